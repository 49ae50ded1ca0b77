package dlq

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/fanout-dev/fanout/schemas"
)

// Body is a dead letter's value decoded for reading (`dlq show`): the
// event as indented JSON, or why it could not be decoded.
type Body struct {
	JSON     []byte // indented; nil when not decoded
	Subject  string
	SchemaID int
	Name     string
	// Err is why the value was not decoded; Undecodable says it is the
	// value's fault (not a record of a known schema: final), not the
	// registry's (worth another try).
	Err         error
	Undecodable bool
}

// DecodeBody decodes value with codec, asking the registry for at most 30s.
func DecodeBody(ctx context.Context, codec *schemas.Codec, value []byte) (Body, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	dec, err := codec.Decode(dctx, value)
	if err != nil {
		var de *schemas.DecodeError
		return Body{Err: err, Undecodable: errors.As(err, &de)}, nil
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, dec.JSON, "", "  "); err != nil {
		return Body{}, fmt.Errorf("render body: %w", err)
	}
	return Body{JSON: pretty.Bytes(), Subject: dec.Subject, SchemaID: dec.SchemaID, Name: dec.Name}, nil
}
