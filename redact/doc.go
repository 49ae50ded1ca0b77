// Package redact owns how fanout hides secrets in what it prints, logs,
// exports, serves or stores in a record header: URL masks a URL's userinfo
// and query values, and a Redactor replaces every configured secret string
// wherever it appears (an API that echoes the request's Authorization header
// in its error body, an error text that quotes a token).
//
// It knows nothing of where the secrets come from: the process's one
// Redactor is app.Secrets, cmd/fanout adds config.Config.Secrets to it, and
// it (or its String method) is handed to the parts that write text out.
package redact
