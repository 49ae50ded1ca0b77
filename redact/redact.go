package redact

import (
	"net/url"
	"regexp"
	"sort"
	"strings"
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
// query value (and their escaped and unescaped forms), for a Redactor.
func URLSecrets(s string) []string {
	u, err := url.Parse(s)
	if err != nil {
		return nil
	}
	var out []string
	if p, ok := u.User.Password(); ok {
		out = append(out, p, url.PathEscape(p), url.QueryEscape(p))
	}
	for _, vs := range u.Query() {
		for _, v := range vs {
			out = append(out, v, url.QueryEscape(v))
		}
	}
	return out
}

// Redactor replaces each of a fixed set of secret strings with Mask. The zero
// value and nil replace nothing. It is safe for concurrent use.
type Redactor struct {
	r *strings.Replacer
}

// New returns a Redactor of secrets; empty strings and those shorter than
// MinLen are ignored. Longer secrets are replaced first, so a secret holding
// another is hidden whole.
func New(secrets ...string) *Redactor {
	seen := map[string]bool{}
	var list []string
	for _, s := range secrets {
		if len(s) >= MinLen && !seen[s] {
			seen[s] = true
			list = append(list, s)
		}
	}
	if len(list) == 0 {
		return &Redactor{}
	}
	sort.Slice(list, func(i, j int) bool { return len(list[i]) > len(list[j]) })
	pairs := make([]string, 0, 2*len(list))
	for _, s := range list {
		pairs = append(pairs, s, Mask)
	}
	return &Redactor{r: strings.NewReplacer(pairs...)}
}

// String returns s with every secret replaced by Mask.
func (r *Redactor) String(s string) string {
	if r == nil || r.r == nil || s == "" {
		return s
	}
	return r.r.Replace(s)
}
