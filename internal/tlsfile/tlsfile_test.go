package tlsfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCAPoolErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	_ = os.WriteFile(junk, []byte("not a certificate"), 0o600)
	if _, err := CAPool(junk); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Fatalf("junk: %v", err)
	}
	if _, err := CAPool(filepath.Join(dir, "missing.pem")); err == nil || !os.IsNotExist(err) {
		t.Fatalf("missing: %v", err)
	}
}
