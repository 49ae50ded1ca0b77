package consumer

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/letter"
)

// Origin names where r first entered fanout, "<topic>/<partition>/<offset>":
// its own coordinates, or, for a record read back from a retry tier or the
// DLQ, the original ones its fanout-original-* headers carry. Every parked
// copy of one record has the same Origin.
func Origin(r *kgo.Record) string {
	l, _ := letter.Parse(r)
	topic, partition, offset := l.Original()
	return topic + "/" + strconv.Itoa(int(partition)) + "/" + strconv.FormatInt(offset, 10)
}
