// Package tlsfile reads the PEM files TLS settings name, for every TLS
// client fanout configures (Kafka, the Schema Registry, a sink's API and its
// token endpoint), so each reads them the same way and says the same thing
// when one is wrong.
package tlsfile

import (
	"crypto/x509"
	"fmt"
	"os"
)

// CAPool reads a PEM file of one or more CA certificates.
func CAPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
