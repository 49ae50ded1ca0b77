package sink

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SigningConfig signs requests the Standard Webhooks way
// (https://www.standardwebhooks.com/, as Svix does): each request carries
// webhook-id (the event id, or the batch key), webhook-timestamp (Unix
// seconds of the attempt) and webhook-signature, "v1,<base64 HMAC-SHA256
// of id.timestamp.body>" for each secret, space-separated, so a receiver
// that rotates its secret verifies with either while both are listed.
type SigningConfig struct {
	// Secrets are "whsec_" and the base64 of the key (the prefix may be
	// left out), at least 16 bytes of key each. Default none: unsigned.
	Secrets []string
}

// minSigningKey is the shortest signing key accepted, in bytes. The spec
// recommends 24 to 64.
const minSigningKey = 16

const (
	hdrWebhookTimestamp = "Webhook-Timestamp"
	hdrWebhookSignature = "Webhook-Signature"
)

// signer holds the decoded signing keys.
type signer struct{ keys [][]byte }

func newSigner(name string, c SigningConfig) (*signer, error) {
	if len(c.Secrets) == 0 {
		return nil, nil
	}
	s := &signer{}
	for i, sec := range c.Secrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sec, "whsec_"))
		switch {
		case err != nil:
			return nil, configError(name, fmt.Sprintf("signing.secrets[%d]", i), "is not whsec_ and base64 (a Standard Webhooks secret)")
		case len(key) < minSigningKey:
			return nil, configError(name, fmt.Sprintf("signing.secrets[%d]", i), "holds a %d-byte key, want at least %d (24 to 64 recommended)", len(key), minSigningKey)
		}
		s.keys = append(s.keys, key)
	}
	return s, nil
}

// sign sets webhook-timestamp and webhook-signature on h for the request
// whose webhook-id header is set already.
func (s *signer) sign(h http.Header, now time.Time, body []byte) {
	ts := strconv.FormatInt(now.Unix(), 10)
	h[hdrWebhookTimestamp] = []string{ts}
	h[hdrWebhookSignature] = []string{s.signature(h.Get(hdrWebhookID), ts, body)}
}

// signature is "v1,<base64>" per key, space-separated.
func (s *signer) signature(id, ts string, body []byte) string {
	var b strings.Builder
	for i, key := range s.keys {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(id))
		m.Write([]byte{'.'})
		m.Write([]byte(ts))
		m.Write([]byte{'.'})
		m.Write(body)
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.WriteString(base64.StdEncoding.EncodeToString(m.Sum(nil)))
	}
	return b.String()
}
