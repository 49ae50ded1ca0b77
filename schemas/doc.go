// Package schemas owns fanout's Avro: the .avsc files shipped with the
// project (Builtin, BuiltinSubjects), the Confluent wire format (magic byte
// 0x00, 4-byte big-endian schema id, Avro binary), writer-schema lookup by
// id from a local directory (Local) or a Confluent-compatible Schema
// Registry (HTTPRegistry), rendering Avro as plain JSON (Codec.Decode) and
// encoding plain JSON as Avro (Codec.EncodeJSON), and naming each event's
// type (Record.Type: the schema's subject or the record's full name, see
// EventTypes and PickSubject).
//
// It must not know about Kafka or about delivering events over HTTP: it
// turns bytes into a Record and back, nothing else. The HTTP client in
// HTTPRegistry talks only to the Schema Registry.
//
// # Plain JSON
//
// Decode renders each message as the JSON a downstream API would want, not
// Avro's own JSON encoding:
//
//   - Records are objects with keys in schema field order; maps are objects
//     with keys sorted; arrays are arrays.
//   - Unions are unwrapped: the value of whichever branch was written, null
//     as null.
//   - int and long are JSON integers, never rounded through float64.
//   - float and double are JSON numbers; NaN, +Inf and -Inf, which JSON
//     cannot express, are the strings "NaN", "Infinity" and "-Infinity".
//   - timestamp-millis is "2006-01-02T15:04:05.000Z" (UTC), timestamp-micros
//     "2006-01-02T15:04:05.000000Z", local-timestamp-* the same without Z,
//     date "2006-01-02", time-millis "15:04:05.000", time-micros
//     "15:04:05.000000". A value outside years 0000-9999 or a day is
//     rendered as its integer instead.
//   - decimal (bytes or fixed) is a string with exactly scale digits after
//     the point: "1234.50", "-0.07".
//   - bytes and fixed are standard base64; enums are their symbol; uuid is
//     the string.
//   - In strings and map keys that are not valid UTF-8, each run of bad
//     bytes is replaced by U+FFFD.
//
// EncodeJSON accepts the same form, so Decode's output always encodes
// again. To keep that true both directions enforce what the schema says
// and Avro does not check by itself: a uuid must look like one, a decimal
// must fit its precision. Other logical types (duration, and any this
// package does not know) are their underlying type. A union value takes
// the first branch it fits, so re-encoding can pick an earlier branch than
// the writer did (5 written as the long of ["double","long"] comes back a
// double); the JSON is the same unless two record branches of one union
// accept the same object.
//
// # Errors and limits
//
// Decode never panics on bad data. A message that can never decode yields
// a *DecodeError wrapping one sentinel (ErrBadMagic, ErrTruncated,
// ErrUnknownSchema, ErrUnsupportedSchema, ErrBadPayload): the caller can
// park it as poison. Any other error (registry down, ctx done) is worth a
// retry. Lengths and counts in the data are checked against the bytes that
// are left before anything is allocated; nesting is limited to 64 levels
// and a message to 2^20 array and map elements.
//
// Decoding and encoding are this package's own, on hamba/avro's schema
// parser: it checks what hamba's decoder does not (trailing bytes, nesting
// depth of recursive schemas, byte offsets for errors) and renders unions
// and logical types without hamba's Go types in between. No exported
// identifier exposes a hamba/avro type.
package schemas
