package redact

import (
	"encoding/base64"
	"io"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Mask is what a hidden value is replaced with.
const Mask = "***"

// MinLen is the shortest secret a Redactor replaces: a shorter string is too
// common in ordinary text (status codes, ids) to mask everywhere, and too
// short to be a credential worth the name.
const MinLen = 4

// URL masks s's password (the user name stays) and every query value:
// https://user:***@host/x?token=***. A string that does not parse as a URL is
// masked by pattern (anything between :// and @, anything after = up to & or
// #), so a malformed URL in an error is hidden too.
func URL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" {
		return maskLoose(s)
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), Mask)
		}
	}
	if u.RawQuery != "" {
		u.RawQuery = maskQuery(u.RawQuery)
	}
	// url.URL.String escapes * in userinfo; undo it for the mask only.
	return strings.Replace(u.String(), ":"+url.QueryEscape(Mask)+"@", ":"+Mask+"@", 1)
}

func maskQuery(q string) string {
	parts := strings.Split(q, "&")
	for i, p := range parts {
		if k, _, ok := strings.Cut(p, "="); ok {
			parts[i] = k + "=" + Mask
		}
	}
	return strings.Join(parts, "&")
}

var (
	looseUser  = regexp.MustCompile(`(://[^/@\s:]*:)[^/@]*@`)
	looseQuery = regexp.MustCompile(`([?&][^=&#\s]*=)[^&#\s]*`)
)

func maskLoose(s string) string {
	s = looseUser.ReplaceAllString(s, "${1}"+Mask+"@")
	return looseQuery.ReplaceAllString(s, "${1}"+Mask)
}

// URLSecrets returns the strings of s that URL hides: the password and each
// query value (and their escaped and unescaped forms, and the Basic
// credentials the userinfo becomes), for a Redactor.
func URLSecrets(s string) []string {
	u, err := url.Parse(s)
	if err != nil {
		return nil
	}
	var out []string
	if p, ok := u.User.Password(); ok {
		// Go's client sends the userinfo as Basic base64(user:password),
		// which an API may echo.
		out = append(out, p, url.PathEscape(p), url.QueryEscape(p),
			base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+p)))
	}
	for _, vs := range u.Query() {
		for _, v := range vs {
			out = append(out, v, url.QueryEscape(v))
		}
	}
	return out
}

// Error returns err with its text passed through hide, keeping its chain
// (errors.Is and As still see err: a context deadline, a certificate
// error); err itself when hide changes nothing, nil for nil.
func Error(err error, hide func(string) string) error {
	if err == nil {
		return nil
	}
	if msg := hide(err.Error()); msg != err.Error() {
		return hidden{msg: msg, err: err}
	}
	return err
}

// hidden is an error whose text had secrets hidden.
type hidden struct {
	msg string
	err error
}

func (h hidden) Error() string { return h.msg }
func (h hidden) Unwrap() error { return h.err }

// Redactor replaces each secret string it was given with Mask. New secrets
// may be added at any time (a command loads its config after its logger is
// made); nil replaces nothing. It is safe for concurrent use.
type Redactor struct {
	mu      sync.Mutex
	secrets map[string]bool
	r       atomic.Pointer[strings.Replacer]
}

// New returns a Redactor of secrets.
func New(secrets ...string) *Redactor {
	r := &Redactor{}
	r.Add(secrets...)
	return r
}

// Add adds secrets; empty strings and those shorter than MinLen are ignored.
// Longer secrets are replaced first, so a secret holding another is hidden
// whole.
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.secrets == nil {
		r.secrets = map[string]bool{}
	}
	added := false
	for _, s := range secrets {
		if len(s) >= MinLen && !r.secrets[s] {
			r.secrets[s], added = true, true
		}
	}
	if !added {
		return
	}
	list := make([]string, 0, len(r.secrets))
	for s := range r.secrets {
		list = append(list, s)
	}
	sort.Slice(list, func(i, j int) bool {
		if len(list[i]) != len(list[j]) {
			return len(list[i]) > len(list[j])
		}
		return list[i] < list[j]
	})
	pairs := make([]string, 0, 2*len(list))
	for _, s := range list {
		pairs = append(pairs, s, Mask)
	}
	r.r.Store(strings.NewReplacer(pairs...))
}

// String returns s with every secret replaced by Mask.
func (r *Redactor) String(s string) string {
	if r == nil || s == "" {
		return s
	}
	if rep := r.r.Load(); rep != nil {
		return rep.Replace(s)
	}
	return s
}

// Writer returns w with every secret replaced in each Write. A secret split
// over two Writes is not seen: it suits writers that get whole lines (slog
// handlers, fmt.Fprint of a message).
func (r *Redactor) Writer(w io.Writer) io.Writer { return writer{w: w, r: r} }

type writer struct {
	w io.Writer
	r *Redactor
}

// Unwrap returns the writer written to, for a caller that asks what it is
// (a terminal check).
func (w writer) Unwrap() io.Writer { return w.w }

func (w writer) Write(p []byte) (int, error) {
	if w.r.r.Load() == nil {
		return w.w.Write(p)
	}
	if _, err := io.WriteString(w.w, w.r.String(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
