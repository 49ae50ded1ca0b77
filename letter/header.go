package letter

// Headers fanout writes on a parked record, next to the record's own headers
// (event-id and traceparent among them), so that on-call can see why it was
// parked and redrive it unchanged: key and value are the original bytes.
const (
	// HeaderPrefix starts every header fanout adds to a parked record.
	HeaderPrefix     = "fanout-"
	HeaderTopic      = "fanout-original-topic"
	HeaderPartition  = "fanout-original-partition"
	HeaderOffset     = "fanout-original-offset"
	HeaderTimestamp  = "fanout-original-timestamp" // RFC 3339, UTC, milliseconds
	HeaderSink       = "fanout-sink"
	HeaderAttempts   = "fanout-attempts"
	HeaderError      = "fanout-error"       // last error, cut by the consumer (1024 bytes)
	HeaderErrorClass = "fanout-error-class" // a Reason
	HeaderStatus     = "fanout-http-status" // last HTTP status, "0" if none
	HeaderParkedAt   = "fanout-parked-at"   // RFC 3339, UTC, milliseconds

	// On records parked in a retry tier:
	HeaderTier      = "fanout-tier"             // 1 for the first tier
	HeaderNotBefore = "fanout-not-before"       // RFC 3339, UTC, ms: the tier delivers it no earlier
	HeaderExcerpt   = "fanout-response-excerpt" // the start of the last failed response's body
	// HeaderRedriveCount counts DLQ redrives; parking keeps it.
	HeaderRedriveCount = "fanout-redrive-count"

	// On a stub letter, parked with its value dropped because the park
	// topic refused the whole record (see consumer.Stub); parking keeps them:
	HeaderValueDropped   = "fanout-value-dropped"   // the original value's size in bytes; the value is a stub
	HeaderValueSHA256    = "fanout-value-sha256"    // hex SHA-256 of the original value
	HeaderKeyDropped     = "fanout-key-dropped"     // the original key's size; the key is its hex SHA-256
	HeaderHeadersDropped = "fanout-headers-dropped" // how many of the record's own headers a bare stub left off
)

// TimeFormat is how a letter's times are written: RFC 3339, UTC, milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"
