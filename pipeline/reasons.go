package pipeline

// The reasons the handler parks a record with (consumer.Outcome.Reason, the
// fanout-error-class header of a tier or DLQ record). This package is their
// only spelling; the dlq commands accept exactly Reasons.
const (
	ReasonPermanent        = "permanent"                // the API refused the event (a permanent status)
	ReasonRetriesExhausted = "retries-exhausted"        // retryable failures until the last tier
	ReasonUndecodable      = "undecodable"              // the value is not Avro of a known schema
	ReasonTooLarge         = "too-large"                // over max_event_bytes
	ReasonTooOld           = "too-old"                  // older than max_event_age
	ReasonBehindKey        = "behind-earlier-of-key"    // an earlier event of its key waits in a retry tier
	ReasonRenderFailed     = "render-failed"            // the event could not be made into a request (template, invalid JSON body, max_body_bytes, a header value)
	ReasonPropagatedAuth   = "propagated-auth-rejected" // the API answered 401 to the authorization record header forwarded with the event
)

// Reasons lists every reason the handler parks a record with. A test parses
// this package and fails on a reason it returns that is not listed here.
var Reasons = []string{
	ReasonPermanent, ReasonRetriesExhausted, ReasonUndecodable, ReasonTooLarge, ReasonTooOld, ReasonBehindKey,
	ReasonRenderFailed, ReasonPropagatedAuth,
}
