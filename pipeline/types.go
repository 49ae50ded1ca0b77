package pipeline

import "github.com/fanout-dev/fanout/schemas"

// skips reports whether the sink's types filter leaves rec out, and counts
// it. The first record skipped because its type is unknown ("": the
// registry could not tell the subjects of its schema id) is logged at
// warn, with the schema id, so a filter that loses every event is never
// silent.
func (h *Handler) skips(rec *schemas.Record) bool {
	if h.types == nil || h.types[rec.Type] {
		return false
	}
	h.skipped.Add(1)
	if rec.Type == "" && h.warnedUntyped.CompareAndSwap(false, true) {
		h.log.Warn("skipping events whose type is unknown: this sink has a types filter, and the schema registry does not tell the subjects of the schema id (GET /schemas/ids/{id}/versions); set schemas.type_from: record to match record names",
			"schema_id", rec.SchemaID, "record", rec.Name, "types", h.cfg.Types)
	}
	return true
}
