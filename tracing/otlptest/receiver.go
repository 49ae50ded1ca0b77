// Package otlptest is a real OTLP/HTTP trace receiver for tests: an HTTP
// server on 127.0.0.1 that accepts what an OpenTelemetry exporter sends to
// /v1/traces (protobuf, optionally gzip) and keeps the spans.
package otlptest

import (
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, with ids in lowercase hex as in traceparent.
type Span struct {
	Service      string
	TraceID      string
	SpanID       string
	ParentSpanID string // "" for a root span
	Name         string
	Kind         string // "server", "client", "producer", "consumer", "internal"
	Attrs        map[string]string
	Links        []Link
	StatusCode   string // "unset", "ok", "error"
	StatusMsg    string
}

// Link is a span link.
type Link struct{ TraceID, SpanID string }

// Receiver collects spans. Start it with New; it stops when Close is called.
type Receiver struct {
	URL string // base URL: give it to the exporter as the OTLP endpoint

	srv *http.Server
	mu  sync.Mutex
	got []Span
	bad []string
}

// New starts a receiver on a free loopback port.
func New() (*Receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Receiver{URL: "http://" + ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", r.traces)
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go r.srv.Serve(ln)
	return r, nil
}

// Close stops the server.
func (r *Receiver) Close() { r.srv.Close() }

// Spans returns a copy of every span received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.got...)
}

// Problems lists requests the receiver could not read.
func (r *Receiver) Problems() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bad...)
}

func (r *Receiver) fail(w http.ResponseWriter, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.bad = append(r.bad, msg)
	r.mu.Unlock()
	http.Error(w, msg, http.StatusBadRequest)
}

func (r *Receiver) traces(w http.ResponseWriter, req *http.Request) {
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		r.fail(w, "Content-Type %q, want application/x-protobuf", ct)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			r.fail(w, "gzip: %v", err)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		r.fail(w, "read: %v", err)
		return
	}
	var msg collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &msg); err != nil {
		r.fail(w, "not an ExportTraceServiceRequest: %v", err)
		return
	}
	var spans []Span
	for _, rs := range msg.ResourceSpans {
		service := attrs(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				sp := Span{
					Service: service, TraceID: hex.EncodeToString(s.TraceId), SpanID: hex.EncodeToString(s.SpanId),
					Name: s.Name, Kind: kind(s.Kind), Attrs: attrs(s.Attributes),
					StatusCode: status(s.GetStatus().GetCode().String()), StatusMsg: s.GetStatus().GetMessage(),
				}
				if len(s.ParentSpanId) > 0 {
					sp.ParentSpanID = hex.EncodeToString(s.ParentSpanId)
				}
				for _, l := range s.Links {
					sp.Links = append(sp.Links, Link{TraceID: hex.EncodeToString(l.TraceId), SpanID: hex.EncodeToString(l.SpanId)})
				}
				spans = append(spans, sp)
			}
		}
	}
	r.mu.Lock()
	r.got = append(r.got, spans...)
	r.mu.Unlock()
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.Key] = strconv.FormatInt(v.IntValue, 10)
		case *commonpb.AnyValue_BoolValue:
			m[kv.Key] = strconv.FormatBool(v.BoolValue)
		case *commonpb.AnyValue_DoubleValue:
			m[kv.Key] = strconv.FormatFloat(v.DoubleValue, 'g', -1, 64)
		default:
			m[kv.Key] = kv.GetValue().String()
		}
	}
	return m
}

func kind(k interface{ String() string }) string {
	switch k.String() {
	case "SPAN_KIND_SERVER":
		return "server"
	case "SPAN_KIND_CLIENT":
		return "client"
	case "SPAN_KIND_PRODUCER":
		return "producer"
	case "SPAN_KIND_CONSUMER":
		return "consumer"
	}
	return "internal"
}

func status(code string) string {
	switch code {
	case "STATUS_CODE_OK":
		return "ok"
	case "STATUS_CODE_ERROR":
		return "error"
	}
	return "unset"
}
