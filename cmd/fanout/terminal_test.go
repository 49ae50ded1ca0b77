package main

import (
	"os"
	"testing"
)

// The secrets filter on stdout does not hide a terminal from replay's
// display (/dev/null is a character device like a terminal).
func TestIsTerminalThroughTheSecretsFilter(t *testing.T) {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	if !isTerminal(f) {
		t.Skip("/dev/null is not a character device here")
	}
	if !isTerminal(secrets.Writer(f)) {
		t.Error("isTerminal(secrets.Writer(/dev/null)) = false: the filter hides the terminal")
	}
}
