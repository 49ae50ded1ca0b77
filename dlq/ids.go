package dlq

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanout-dev/fanout/pipeline"
	"github.com/fanout-dev/fanout/schemas"
)

// IDs names a letter's event as the sink's delivery path does
// (pipeline.EventID): the body's id field, else the event-id header, else the
// original topic/partition/offset. The codec is built on first need; a body
// that does not decode (or no codec) leaves the header and the coordinates.
type IDs struct {
	field    string
	newCodec func() (*schemas.Codec, error)
	once     sync.Once
	codec    *schemas.Codec
}

// NewIDs names events by the sink's id field (config.Sink.IDField), decoding
// bodies with the codec newCodec builds on first need.
func NewIDs(field string, newCodec func() (*schemas.Codec, error)) *IDs {
	return &IDs{field: field, newCodec: newCodec}
}

// Of names the event a letter is a copy of.
func (x *IDs) Of(ctx context.Context, l Letter) string { return x.Record(ctx, l.Original()) }

// Record names r's event. It is safe for concurrent use.
func (x *IDs) Record(ctx context.Context, r *kgo.Record) string {
	x.once.Do(func() { x.codec, _ = x.newCodec() })
	var dec *schemas.Record
	if x.codec != nil {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		dec, _ = x.codec.Decode(dctx, r.Value)
		cancel()
	}
	return pipeline.EventID(dec, r, x.field)
}
