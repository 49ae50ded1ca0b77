// Package sink owns one downstream HTTP API: building the request for an
// event (method, fixed URL, static and templated headers, body template,
// idempotency and trace headers), the pooled transport, per-attempt
// timeouts, in-line retries with exponential backoff and full jitter,
// Retry-After, and the one classifier that decides whether an outcome is
// done, retryable, permanent or cancelled.
//
// It must not know about Kafka, Avro, Redis, offsets or retry topics. An
// [Event] is already decoded; what happens to an event whose in-line budget
// is spent (retry tier, DLQ) is the caller's business, decided from
// [Result.Class].
//
// The delivery policy (deliver.go: in-line retries, backoff, Retry-After,
// the rate limit and breaker pause, the 401 refresh, classification) is
// separate from how one attempt travels: an attempter sends one attempt and
// reports its outcome, as one HTTP request (attempt_http.go) or as a place
// in a CloudEvents batch (batch.go, batch_body.go). A sink for another
// transport is a new attempter plus its config.
//
// Non-obvious decisions:
//
//   - The URL is never templated: event data never chooses the host. Only
//     header values and the body are templates.
//   - Templates are rendered once per Deliver, before the first attempt. A
//     render error is [Permanent] with Attempts 0: no request was sent, and
//     bad input must not retry forever.
//   - In templates a missing key and a JSON null both render as empty text
//     (text/template would print "<no value>"), and a null or missing
//     intermediate (.Record.user.email with no user) is empty, not an error.
//   - Redirects are not followed: an API that redirects is misconfigured, so a
//     3xx is [Permanent]. So is a TLS certificate from an unknown authority
//     or for another host (configuration); an expired one stays retryable.
//   - A definite answer wins over cancellation: a 2xx that arrives as the
//     parent context ends is [Done], not [Canceled].
//   - Response bodies are read up to Config.MaxResponseBytes for the error
//     excerpt, then drained up to 64 KiB so the connection can be reused; a
//     longer body costs the connection, not memory.
//   - Batched, a whole-batch refusal is not final for its events: a 413 is
//     split in halves and any other permanent answer is followed by one
//     request per event, within the same attempt (Result.Attempts counts
//     attempts, not requests). An event's answer alone is final, so none is
//     tried alone twice per attempt.
//   - Batch bodies are written by jsontext.AppendString, never strconv.Quote
//     (Go quoting is not JSON): invalid UTF-8 becomes U+FFFD on the wire.
//     An id that a header cannot carry (a control character, invalid UTF-8)
//     goes in Idempotency-Key and webhook-id as its SHA-256 (headerID).
//   - Errors carry the URL without userinfo or query (a transport error from
//     net/http would otherwise embed the query string, which may hold a
//     token). Nothing logs payloads or response bodies.
package sink
