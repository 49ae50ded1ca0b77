package letter

// Reason classifies a parked record: why it was parked (consumer.Outcome.Reason,
// the fanout-error-class header of a tier or DLQ record).
type Reason string

// The reasons the handler parks a record with. This package is their only
// spelling; the dlq commands accept exactly Reasons.
const (
	ReasonPermanent        Reason = "permanent"                // the API refused the event (a permanent status)
	ReasonRetriesExhausted Reason = "retries-exhausted"        // retryable failures until the last tier
	ReasonUndecodable      Reason = "undecodable"              // the value is not Avro of a known schema
	ReasonTooLarge         Reason = "too-large"                // over max_event_bytes
	ReasonTooOld           Reason = "too-old"                  // older than max_event_age
	ReasonBehindKey        Reason = "behind-earlier-of-key"    // an earlier event of its key waits in a retry tier
	ReasonRenderFailed     Reason = "render-failed"            // the event could not be made into a request (template, invalid JSON body, max_body_bytes, a header value)
	ReasonPropagatedAuth   Reason = "propagated-auth-rejected" // the API answered 401 to the authorization record header forwarded with the event
)

// Reasons lists every reason the handler parks a record with. A pipeline test
// parses the handler and the consumer and fails on a reason parked that is not
// listed here (or listed and never parked).
var Reasons = []Reason{
	ReasonPermanent, ReasonRetriesExhausted, ReasonUndecodable, ReasonTooLarge, ReasonTooOld, ReasonBehindKey,
	ReasonRenderFailed, ReasonPropagatedAuth,
}
