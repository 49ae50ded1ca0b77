package sink

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"syscall"
	"testing"
	"time"
)

func TestClassifyStatus(t *testing.T) {
	plain := newTestSink(t, Config{URL: "http://example.test/"})
	overridden := newTestSink(t, Config{
		URL:             "http://example.test/",
		RetryStatus:     []int{409, 501},
		PermanentStatus: []int{503, 429},
	})
	tests := []struct {
		status          int
		want, wantOverr Class
	}{
		{200, Done, Done},
		{201, Done, Done},
		{202, Done, Done},
		{204, Done, Done},
		{299, Done, Done},
		{100, Permanent, Permanent},
		{101, Permanent, Permanent},
		{301, Permanent, Permanent},
		{302, Permanent, Permanent},
		{304, Permanent, Permanent},
		{307, Permanent, Permanent},
		{308, Permanent, Permanent},
		{400, Permanent, Permanent},
		{401, Permanent, Permanent},
		{403, Permanent, Permanent},
		{404, Permanent, Permanent},
		{408, Retryable, Retryable},
		{409, Permanent, Retryable},
		{410, Permanent, Permanent},
		{413, Permanent, Permanent},
		{422, Permanent, Permanent},
		{425, Retryable, Retryable},
		{429, Retryable, Permanent},
		{431, Permanent, Permanent},
		{500, Retryable, Retryable},
		{501, Permanent, Retryable},
		{502, Retryable, Retryable},
		{503, Retryable, Permanent},
		{504, Retryable, Retryable},
		{505, Retryable, Retryable},
		{507, Retryable, Retryable},
		{511, Retryable, Retryable},
		{599, Retryable, Retryable},
		{600, Permanent, Permanent},
		{0, Permanent, Permanent},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			if got := plain.Classify(tt.status, nil); got != tt.want {
				t.Errorf("default: Classify(%d) = %v, want %v", tt.status, got, tt.want)
			}
			if got := overridden.Classify(tt.status, nil); got != tt.wantOverr {
				t.Errorf("overridden: Classify(%d) = %v, want %v", tt.status, got, tt.wantOverr)
			}
		})
	}
}

func TestClassifyError(t *testing.T) {
	s := newTestSink(t, Config{URL: "http://example.test/"})
	urlErr := func(err error) error { return &url.Error{Op: "Post", URL: "http://example.test/", Err: err} }
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"render", fmt.Errorf("%w: body: boom", ErrRender), Permanent},
		{"canceled", urlErr(context.Canceled), Canceled},
		{"attempt timeout", urlErr(context.DeadlineExceeded), Retryable},
		{"wrapped timeout", fmt.Errorf("attempt timed out after 1s: %w", urlErr(context.DeadlineExceeded)), Retryable},
		{"refused", urlErr(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), Retryable},
		{"reset", urlErr(&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}), Retryable},
		{"eof", urlErr(io.EOF), Retryable},
		{"unexpected eof", urlErr(io.ErrUnexpectedEOF), Retryable},
		{"dns", urlErr(&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "x.test", IsNotFound: true}}), Retryable},
		{"unknown authority", urlErr(x509.UnknownAuthorityError{}), Permanent},
		{"wrong host", urlErr(x509.HostnameError{Host: "x.test", Certificate: &x509.Certificate{}}), Permanent},
		{"expired", urlErr(x509.CertificateInvalidError{Reason: x509.Expired}), Retryable},
		{"other", errors.New("something odd"), Retryable},
		{"status 400", &StatusError{Code: 400}, Permanent},
		{"status 503", &StatusError{Code: 503}, Retryable},
		{"wrapped status 429", fmt.Errorf("deliver: %w", &StatusError{Code: 429}), Retryable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The status is ignored when there is an error.
			if got := s.Classify(200, tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestClassString(t *testing.T) {
	for c, want := range map[Class]string{
		Done: "done", Retryable: "retryable", Permanent: "permanent", Canceled: "canceled", Class(9): "Class(9)",
	} {
		if got := c.String(); got != want {
			t.Errorf("Class(%d).String() = %q, want %q", int(c), got, want)
		}
	}
}

func TestStatusErrorMessage(t *testing.T) {
	tests := []struct {
		err  StatusError
		want string
	}{
		{StatusError{Code: 503, Excerpt: "down for maintenance"}, "http 503: down for maintenance"},
		{StatusError{Code: 429, RetryAfter: time.Second}, "http 429"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}
