// Package redact owns how fanout hides secrets in what it prints, logs,
// exports, serves or stores in a record header: URL masks a URL's userinfo
// and query values, and a Redactor replaces every configured secret string
// wherever it appears (an API that echoes the request's Authorization header
// in its error body, an error text that quotes a token).
//
// It knows nothing of where the secrets come from: cmd/fanout builds a
// Redactor from config.Config.Secrets and hands its String method to the
// parts that write text out.
package redact
