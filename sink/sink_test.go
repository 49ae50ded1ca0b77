package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestDeliverRetries(t *testing.T) {
	tests := []struct {
		name         string
		cfg          Config
		seq          []int
		wantAttempts int
		wantClass    Class
		wantStatus   int
	}{
		{"200 at once", Config{}, []int{200}, 1, Done, 200},
		{"503 twice then 200", Config{}, []int{503, 503, 200}, 3, Done, 200},
		{"429 then 204", Config{}, []int{429, 204}, 2, Done, 204},
		{"always 503", Config{}, []int{503}, 5, Retryable, 503},
		{"always 500 with 3 attempts", Config{Attempts: 3}, []int{500}, 3, Retryable, 500},
		{"one attempt", Config{Attempts: 1}, []int{503, 200}, 1, Retryable, 503},
		{"400 is permanent", Config{}, []int{400, 200}, 1, Permanent, 400},
		{"501 is permanent", Config{}, []int{501, 200}, 1, Permanent, 501},
		{"503 then 404", Config{}, []int{503, 404, 200}, 2, Permanent, 404},
		{"409 retried when configured", Config{RetryStatus: []int{409}}, []int{409, 409, 201}, 3, Done, 201},
		{"503 permanent when configured", Config{PermanentStatus: []int{503}}, []int{503, 200}, 1, Permanent, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(t, tt.seq...)
			cfg := tt.cfg
			cfg.URL = rec.srv.URL
			w := &waits{}
			s := newTestSink(t, cfg, WithSleep(w.sleep))
			res := s.Deliver(context.Background(), userRegistered)
			if res.Attempts != tt.wantAttempts || res.Class != tt.wantClass || res.Status != tt.wantStatus {
				t.Errorf("Deliver = {Attempts:%d Class:%v Status:%d Err:%v}, want {Attempts:%d Class:%v Status:%d}",
					res.Attempts, res.Class, res.Status, res.Err, tt.wantAttempts, tt.wantClass, tt.wantStatus)
			}
			if got := rec.hits.Load(); got != int64(tt.wantAttempts) {
				t.Errorf("server saw %d requests, want %d", got, tt.wantAttempts)
			}
			if got := len(w.get()); got != tt.wantAttempts-1 {
				t.Errorf("waited %d times, want %d (one between attempts, none after the last)", got, tt.wantAttempts-1)
			}
			if tt.wantClass == Done {
				if res.Err != nil {
					t.Errorf("Err = %v, want nil", res.Err)
				}
				return
			}
			se, ok := errors.AsType[*StatusError](res.Err)
			if !ok || se.Code != tt.wantStatus {
				t.Errorf("Err = %#v, want *StatusError with code %d", res.Err, tt.wantStatus)
			}
		})
	}
}

func TestDeliverIdempotencyKeySameOnEveryAttempt(t *testing.T) {
	rec := newRecorder(t, 503, 503, 200)
	s := newTestSink(t, Config{URL: rec.srv.URL}, WithSleep(noWait))
	if res := s.Deliver(context.Background(), userRegistered); res.Class != Done {
		t.Fatalf("Deliver = %+v", res)
	}
	for i := range 3 {
		c := rec.next(t)
		if c.header.Get("Idempotency-Key") != userRegistered.ID || string(c.body) != string(userRegistered.Body) {
			t.Errorf("attempt %d: key %q body %q, want the same on every attempt", i+1, c.header.Get("Idempotency-Key"), c.body)
		}
	}
}

func TestStatusErrorExcerpt(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		max      int64
		want     string
		wantFull string
	}{
		{"trimmed", "  \n upstream unavailable \n", 0, "upstream unavailable", "http 503: upstream unavailable"},
		{"empty", "", 0, "", "http 503"},
		{"cut at the limit", "0123456789abcdef", 10, "0123456789", "http 503: 0123456789"},
		{"cut rune dropped", "abcdefgh€", 10, "abcdefgh", "http 503: abcdefgh"}, // € is 3 bytes; 2 fit
		{"invalid utf-8 replaced", "bad \xff\xfe byte", 0, "bad \uFFFD byte", "http 503: bad \uFFFD byte"},
		{"long body", strings.Repeat("x", 10000), 0, strings.Repeat("x", 4096), "http 503: " + strings.Repeat("x", 4096)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(503)
				io.WriteString(w, tt.body)
			}))
			t.Cleanup(srv.Close)
			s := newTestSink(t, Config{URL: srv.URL, Attempts: 2, MaxResponseBytes: tt.max}, WithSleep(noWait))
			res := s.Deliver(context.Background(), userRegistered)
			se, ok := errors.AsType[*StatusError](res.Err)
			if !ok {
				t.Fatalf("Err = %v, want *StatusError", res.Err)
			}
			if se.Excerpt != tt.want {
				t.Errorf("Excerpt = %q, want %q", se.Excerpt, tt.want)
			}
			if se.Error() != tt.wantFull {
				t.Errorf("Error() = %q, want %q", se.Error(), tt.wantFull)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		status     int
		header     string
		cap        time.Duration
		wantWait   time.Duration // -1: the jittered backoff, not Retry-After
		wantResult time.Duration // Result.RetryAfter and StatusError.RetryAfter
	}{
		{"seconds", 503, "2", 0, 2 * time.Second, 2 * time.Second},
		{"zero seconds", 429, "0", 0, 0, 0},
		{"seconds capped", 429, "120", 0, 30 * time.Second, 120 * time.Second},
		{"custom cap", 503, "10", 5 * time.Second, 5 * time.Second, 10 * time.Second},
		{"http-date", 503, now.Add(7 * time.Second).Format(http.TimeFormat), 0, 7 * time.Second, 7 * time.Second},
		{"http-date capped", 503, now.Add(time.Hour).Format(http.TimeFormat), 0, 30 * time.Second, time.Hour},
		{"http-date in the past", 503, now.Add(-time.Minute).Format(http.TimeFormat), 0, 0, 0},
		{"rfc 850 date", 503, now.Add(3 * time.Second).Format("Monday, 02-Jan-06 15:04:05 GMT"), 0, 3 * time.Second, 3 * time.Second},
		{"huge seconds", 503, "99999999999999999999999", 0, 30 * time.Second, time.Duration(maxRetryAfter) * time.Second},
		{"garbage falls back to backoff", 503, "soon", 0, -1, 0},
		{"negative falls back to backoff", 503, "-5", 0, -1, 0},
		{"none", 503, "", 0, -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if hits.Add(1) > 1 {
					w.WriteHeader(200)
					return
				}
				if tt.header != "" {
					w.Header().Set("Retry-After", tt.header)
				}
				w.WriteHeader(tt.status)
			}))
			t.Cleanup(srv.Close)
			w := &waits{}
			base := 80 * time.Millisecond
			s := newTestSink(t, Config{URL: srv.URL, Attempts: 2, RetryAfterCap: tt.cap, BackoffBase: base},
				WithSleep(w.sleep), WithRand(func() float64 { return 0.5 }))
			s.now = func() time.Time { return now }
			res := s.Deliver(context.Background(), userRegistered)
			if res.Class != Done || res.Attempts != 2 {
				t.Fatalf("Deliver = %+v, want Done after 2 attempts", res)
			}
			ws := w.get()
			if len(ws) != 1 {
				t.Fatalf("waits = %v, want one", ws)
			}
			want := tt.wantWait
			if want < 0 {
				want = base / 2 // rand 0.5 of the first ceiling
			}
			if ws[0] != want {
				t.Errorf("wait = %v, want %v", ws[0], want)
			}
			if res.RetryAfter != tt.wantResult {
				t.Errorf("Result.RetryAfter = %v, want %v", res.RetryAfter, tt.wantResult)
			}
		})
	}
}

func TestRetryAfterOnPermanentIsNotWaited(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(http.StatusBadRequest)
	}))
	t.Cleanup(srv.Close)
	w := &waits{}
	s := newTestSink(t, Config{URL: srv.URL}, WithSleep(w.sleep))
	res := s.Deliver(context.Background(), userRegistered)
	if res.Class != Permanent || res.Attempts != 1 || len(w.get()) != 0 {
		t.Errorf("Deliver = %+v, waits %v; want Permanent, 1 attempt, no wait", res, w.get())
	}
	if se, _ := errors.AsType[*StatusError](res.Err); se == nil || se.RetryAfter != 5*time.Second || res.RetryAfter != 5*time.Second {
		t.Errorf("RetryAfter not reported: %+v / %#v", res, res.Err)
	}
}

func TestBackoff(t *testing.T) {
	const attempts = 9
	base, limit := 10*time.Millisecond, 300*time.Millisecond
	ceiling := func(n int) time.Duration { return min(limit, base<<(n-1)) }
	tests := []struct {
		name string
		rand func() float64
		// check gets the wait after attempt n and its ceiling.
		check func(t *testing.T, n int, got, ceil time.Duration)
	}{
		{"rand 0 waits nothing", func() float64 { return 0 }, func(t *testing.T, n int, got, ceil time.Duration) {
			if got != 0 {
				t.Errorf("wait %d = %v, want 0", n, got)
			}
		}},
		{"rand near 1 waits just under the ceiling", func() float64 { return 0.999999 }, func(t *testing.T, n int, got, ceil time.Duration) {
			if got >= ceil || got < ceil*999/1000 {
				t.Errorf("wait %d = %v, want just under %v", n, got, ceil)
			}
		}},
		{"rand half", func() float64 { return 0.5 }, func(t *testing.T, n int, got, ceil time.Duration) {
			if got != ceil/2 {
				t.Errorf("wait %d = %v, want %v", n, got, ceil/2)
			}
		}},
		{"broken rand 1.0 stays below the ceiling", func() float64 { return 1 }, func(t *testing.T, n int, got, ceil time.Duration) {
			if got >= ceil {
				t.Errorf("wait %d = %v, want below %v", n, got, ceil)
			}
		}},
		{"real rand in range", nil, func(t *testing.T, n int, got, ceil time.Duration) {
			if got < 0 || got >= ceil {
				t.Errorf("wait %d = %v, want in [0, %v)", n, got, ceil)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(t, 503)
			w := &waits{}
			s := newTestSink(t, Config{URL: rec.srv.URL, Attempts: attempts, BackoffBase: base, BackoffCap: limit},
				WithSleep(w.sleep), WithRand(tt.rand))
			if res := s.Deliver(context.Background(), userRegistered); res.Class != Retryable || res.Attempts != attempts {
				t.Fatalf("Deliver = %+v", res)
			}
			ws := w.get()
			if len(ws) != attempts-1 {
				t.Fatalf("%d waits, want %d", len(ws), attempts-1)
			}
			for i, got := range ws {
				tt.check(t, i+1, got, ceiling(i+1))
			}
		})
	}
}

func TestBackoffNoOverflow(t *testing.T) {
	half := func() float64 { return 0.5 }
	tests := []struct {
		n           int
		base, limit time.Duration
		want        time.Duration
	}{
		{1, 100 * time.Millisecond, 10 * time.Second, 50 * time.Millisecond},
		{2, 100 * time.Millisecond, 10 * time.Second, 100 * time.Millisecond},
		{8, 100 * time.Millisecond, 10 * time.Second, 5 * time.Second},
		{1000, 100 * time.Millisecond, 10 * time.Second, 5 * time.Second},
		{200, time.Nanosecond, 1<<63 - 1, (1<<63 - 1) / 2},
		{64, 3 * time.Hour, 1<<63 - 1, (1<<63 - 1) / 2},
		{5, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d_%v_%v", tt.n, tt.base, tt.limit), func(t *testing.T) {
			got := backoff(tt.n, tt.base, tt.limit, half)
			if d := got - tt.want; d < -1 || d > 1 { // float rounding
				t.Errorf("backoff = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAttemptTimeout(t *testing.T) {
	tests := []struct {
		name         string
		slow         int // how many first requests hang past the timeout
		attempts     int
		wantClass    Class
		wantAttempts int
	}{
		{"slow once then ok", 1, 3, Done, 2},
		{"always slow", 100, 2, Retryable, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if hits.Add(1) <= int64(tt.slow) {
					hang(r)
					return
				}
				w.WriteHeader(200)
			}))
			t.Cleanup(srv.Close)
			s := newTestSink(t, Config{URL: srv.URL, Timeout: 300 * time.Millisecond, Attempts: tt.attempts}, WithSleep(noWait))
			start := time.Now()
			res := s.Deliver(context.Background(), userRegistered)
			if res.Class != tt.wantClass || res.Attempts != tt.wantAttempts {
				t.Fatalf("Deliver = %+v, want %v after %d attempts", res, tt.wantClass, tt.wantAttempts)
			}
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("took %v; the attempt timeout did not fire", el)
			}
			if tt.wantClass == Retryable {
				if !errors.Is(res.Err, context.DeadlineExceeded) || !strings.Contains(res.Err.Error(), "attempt timed out after 300ms") {
					t.Errorf("Err = %v, want an attempt timeout", res.Err)
				}
				if res.Status != 0 {
					t.Errorf("Status = %d, want 0 (no response)", res.Status)
				}
			}
		})
	}
}

func TestCanceled(t *testing.T) {
	tests := []struct {
		name string
		// run delivers with ctx; cancel is called by the scenario at the
		// moment it is testing.
		run          func(t *testing.T, ctx context.Context, cancel context.CancelFunc) Result
		wantAttempts int
		wantStatus   int
		wantErr      error
	}{
		{
			name: "during a slow request",
			run: func(t *testing.T, ctx context.Context, cancel context.CancelFunc) Result {
				arrived := make(chan struct{}, 1)
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					arrived <- struct{}{}
					hang(r)
				}))
				t.Cleanup(srv.Close)
				s := newTestSink(t, Config{URL: srv.URL, Timeout: time.Minute})
				go func() { <-arrived; cancel() }()
				return s.Deliver(ctx, userRegistered)
			},
			wantAttempts: 1, wantErr: context.Canceled,
		},
		{
			name: "during backoff",
			run: func(t *testing.T, ctx context.Context, cancel context.CancelFunc) Result {
				rec := newRecorder(t, 503)
				sleeping := make(chan struct{})
				s := newTestSink(t, Config{URL: rec.srv.URL, BackoffBase: 20 * time.Second, BackoffCap: 20 * time.Second},
					WithRand(func() float64 { return 0.5 }),
					WithSleep(func(ctx context.Context, d time.Duration) error {
						close(sleeping)
						return sleep(ctx, d) // the real wait: 10s
					}))
				go func() { <-sleeping; cancel() }()
				return s.Deliver(ctx, userRegistered)
			},
			wantAttempts: 1, wantStatus: 503, wantErr: context.Canceled,
		},
		{
			name: "during a Retry-After wait",
			run: func(t *testing.T, ctx context.Context, cancel context.CancelFunc) Result {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Retry-After", "10")
					w.WriteHeader(429)
				}))
				t.Cleanup(srv.Close)
				sleeping := make(chan struct{})
				s := newTestSink(t, Config{URL: srv.URL, RetryAfterCap: time.Hour},
					WithSleep(func(ctx context.Context, d time.Duration) error {
						close(sleeping)
						return sleep(ctx, d)
					}))
				go func() { <-sleeping; cancel() }()
				return s.Deliver(ctx, userRegistered)
			},
			wantAttempts: 1, wantStatus: 429, wantErr: context.Canceled,
		},
		{
			name: "before the first attempt",
			run: func(t *testing.T, ctx context.Context, cancel context.CancelFunc) Result {
				rec := newRecorder(t)
				s := newTestSink(t, Config{URL: rec.srv.URL})
				cancel()
				res := s.Deliver(ctx, userRegistered)
				if n := rec.hits.Load(); n != 0 {
					t.Errorf("server saw %d requests, want none", n)
				}
				return res
			},
			wantAttempts: 0, wantErr: context.Canceled,
		},
		{
			name: "parent deadline shorter than the attempt timeout",
			run: func(t *testing.T, ctx context.Context, cancel context.CancelFunc) Result {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					hang(r)
				}))
				t.Cleanup(srv.Close)
				s := newTestSink(t, Config{URL: srv.URL, Timeout: time.Minute})
				ctx, cancelT := context.WithTimeout(ctx, 100*time.Millisecond)
				defer cancelT()
				return s.Deliver(ctx, userRegistered)
			},
			wantAttempts: 1, wantErr: context.DeadlineExceeded,
		},
		{
			name: "parent deadline on the last attempt",
			run: func(t *testing.T, ctx context.Context, cancel context.CancelFunc) Result {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					hang(r)
				}))
				t.Cleanup(srv.Close)
				s := newTestSink(t, Config{URL: srv.URL, Timeout: time.Minute, Attempts: 1})
				ctx, cancelT := context.WithTimeout(ctx, 100*time.Millisecond)
				defer cancelT()
				return s.Deliver(ctx, userRegistered)
			},
			wantAttempts: 1, wantErr: context.DeadlineExceeded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			start := time.Now()
			res := tt.run(t, ctx, cancel)
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("Deliver returned after %v, want promptly", el)
			}
			if res.Class != Canceled || res.Attempts != tt.wantAttempts || res.Status != tt.wantStatus {
				t.Errorf("Deliver = %+v, want Canceled after %d attempts with status %d", res, tt.wantAttempts, tt.wantStatus)
			}
			if !errors.Is(res.Err, tt.wantErr) {
				t.Errorf("Err = %v, want %v", res.Err, tt.wantErr)
			}
		})
	}
}

func TestCanceledWithCause(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("partition revoked")
	cancel(cause)
	s := newTestSink(t, Config{URL: "http://127.0.0.1:1/"})
	res := s.Deliver(ctx, userRegistered)
	if res.Class != Canceled || !errors.Is(res.Err, context.Canceled) || !errors.Is(res.Err, cause) {
		t.Errorf("Deliver = %+v, want Canceled carrying context.Canceled and the cause", res)
	}
}

func TestConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	w := &waits{}
	s := newTestSink(t, Config{URL: "http://svc:hunter2@" + addr + "/hook?token=s3cret", Attempts: 3}, WithSleep(w.sleep))
	res := s.Deliver(context.Background(), userRegistered)
	if res.Class != Retryable || res.Attempts != 3 || res.Status != 0 || len(w.get()) != 2 {
		t.Fatalf("Deliver = %+v (waits %v), want Retryable after 3 attempts, no status", res, w.get())
	}
	if !errors.Is(res.Err, syscall.ECONNREFUSED) {
		t.Errorf("Err = %v, want connection refused", res.Err)
	}
	msg := res.Err.Error()
	if strings.Contains(msg, "s3cret") || strings.Contains(msg, "hunter2") || strings.Contains(msg, "svc") {
		t.Errorf("error leaks URL credentials: %s", msg)
	}
	if !strings.Contains(msg, "http://"+addr+"/hook") {
		t.Errorf("error %q does not name the safe URL", msg)
	}
}

func TestRedirectIsPermanent(t *testing.T) {
	var followed atomic.Int64
	for _, code := range []int{301, 302, 307, 308} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			mux := http.NewServeMux()
			mux.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/new", code) })
			mux.HandleFunc("/new", func(w http.ResponseWriter, r *http.Request) { followed.Add(1) })
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			s := newTestSink(t, Config{URL: srv.URL + "/old"}, WithSleep(noWait))
			res := s.Deliver(context.Background(), userRegistered)
			if res.Class != Permanent || res.Attempts != 1 || res.Status != code {
				t.Errorf("Deliver = %+v, want Permanent with %d after 1 attempt", res, code)
			}
			if n := followed.Load(); n != 0 {
				t.Errorf("redirect followed %d times", n)
			}
		})
	}
}

func TestUnknownCertificateAuthorityIsPermanent(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake error is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s := newTestSink(t, Config{URL: srv.URL}, WithSleep(noWait))
	res := s.Deliver(context.Background(), userRegistered)
	if res.Class != Permanent || res.Attempts != 1 {
		t.Errorf("Deliver = %+v, want Permanent after 1 attempt (our roots do not trust httptest's CA)", res)
	}
}

// TestConnectionReuse counts the connections a server accepts: a body the
// sink drains leaves the connection reusable; one past the drain limit costs
// the connection.
func TestConnectionReuse(t *testing.T) {
	const deliveries = 5
	tests := []struct {
		name      string
		status    int
		bodySize  int
		chunked   bool
		wantConns int64
	}{
		{"200 with a small body", 200, 100, false, 1},
		{"200 with 60 KiB", 200, 60 << 10, false, 1},
		{"200 with 60 KiB chunked", 200, 60 << 10, true, 1},
		{"500 with 60 KiB past the excerpt", 500, 60 << 10, false, 1},
		{"200 with 1 MiB drops the connection", 200, 1 << 20, false, deliveries},
		{"500 with 1 MiB drops the connection", 500, 1 << 20, true, deliveries},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := bytes.Repeat([]byte("z"), tt.bodySize)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !tt.chunked {
					w.Header().Set("Content-Length", fmt.Sprint(len(body)))
				}
				w.WriteHeader(tt.status)
				w.Write(body)
			}))
			var conns atomic.Int64
			srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
				if st == http.StateNew {
					conns.Add(1)
				}
			}
			srv.Start()
			t.Cleanup(srv.Close)
			s := newTestSink(t, Config{URL: srv.URL, Attempts: 1})
			for i := range deliveries {
				res := s.Deliver(context.Background(), userRegistered)
				if res.Status != tt.status {
					t.Fatalf("delivery %d: %+v", i, res)
				}
			}
			if got := conns.Load(); got != tt.wantConns {
				t.Errorf("%d deliveries opened %d connections, want %d", deliveries, got, tt.wantConns)
			}
		})
	}
}

// TestConcurrentDeliveries runs deliveries in parallel under -race and
// checks the pool is bounded by MaxConns.
func TestConcurrentDeliveries(t *testing.T) {
	const workers, each, maxConns = 8, 20, 4
	var conns, inFlight, peak atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		if r.Header.Get("Idempotency-Key") == "" {
			w.WriteHeader(400)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	s := newTestSink(t, Config{URL: srv.URL, MaxConns: maxConns, Headers: map[string]string{"X-Plan": "{{ .Record.plan }}"}})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				ev := userRegistered
				ev.ID = fmt.Sprintf("w%d-%d", w, i)
				if res := s.Deliver(context.Background(), ev); res.Class != Done {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d deliveries failed", n)
	}
	if c, p := conns.Load(), peak.Load(); c > maxConns || p > maxConns {
		t.Errorf("opened %d connections with %d in flight at peak, want at most %d", c, p, maxConns)
	}
}

// TestLogging checks the fixed keys and that neither payloads, response
// bodies nor URL credentials reach the log.
func TestLogging(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(503)
		io.WriteString(w, "echo: ada@example.test")
	}))
	t.Cleanup(srv.Close)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := l.Addr().String()
	l.Close()

	for _, url := range []string{srv.URL + "/?token=s3cret", "http://u:hunter2@" + refused + "/?token=s3cret"} {
		s, err := New(Config{Name: "email", URL: url, Attempts: 2, Body: `{{ .JSON }}`}, logger, WithSleep(noWait))
		if err != nil {
			t.Fatal(err)
		}
		s.Deliver(context.Background(), userRegistered)
		s.Close()
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	for _, want := range []string{"sink=email", "event_id=evt-0001", "attempt=1", "attempt=2", "status=503", "class=retryable", "connection refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"ada@example.test", "s3cret", "hunter2", "pro"} {
		if strings.Contains(out, secret) {
			t.Errorf("log leaks %q:\n%s", secret, out)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func BenchmarkDeliver(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	benches := []struct {
		name string
		cfg  Config
	}{
		{"plain", Config{URL: srv.URL}},
		{"templated", Config{URL: srv.URL,
			Headers: map[string]string{"Authorization": "Bearer t", "X-Plan": "{{ .Record.plan }}"},
			Body:    `{"to":{{ json .Record.email }},"name":{{ json .Record.user.name }}}`}},
		// The issue 11 costs: a checked JSON body, and signing with two
		// secrets plus a bearer token per attempt.
		{"signed", Config{URL: srv.URL, Auth: AuthConfig{Type: "bearer", Token: "tok-123456"},
			Signing: SigningConfig{Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"}},
			Body:    `{"to":{{ json .Record.email }},"name":{{ json .Record.user.name }}}`}},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			s := newTestSink(b, bb.cfg)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if res := s.Deliver(ctx, userRegistered); res.Class != Done {
					b.Fatalf("Deliver = %+v", res)
				}
			}
		})
		b.Run(bb.name+"/parallel", func(b *testing.B) {
			s := newTestSink(b, bb.cfg)
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if res := s.Deliver(ctx, userRegistered); res.Class != Done {
						b.Errorf("Deliver = %+v", res)
						return
					}
				}
			})
		})
	}
}
