package consumer

import "github.com/twmb/franz-go/pkg/kgo"

// Origin names where r first entered fanout, "<topic>/<partition>/<offset>":
// its own coordinates, or, for a record read back from a retry tier or the
// DLQ, the original ones its fanout-original-* headers carry. Every parked
// copy of one record has the same Origin.
func Origin(r *kgo.Record) string {
	o := originOf(r)
	return o.topic + "/" + o.partition + "/" + o.offset
}
