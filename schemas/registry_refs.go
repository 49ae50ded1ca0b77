package schemas

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
)

// schemaRef is one entry of a registry schema's "references": the
// subject and version that define a named type the schema uses.
type schemaRef struct {
	Name    string `json:"name"`
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

type refKey struct {
	subject string
	version int // <= 0: latest
}

// refSchema is a referenced subject version as the registry holds it.
type refSchema struct {
	schema     string
	schemaType string
	refs       []schemaRef
}

const (
	// maxRefDepth bounds a chain of references (a refers to b refers to
	// c ...); maxRefs the distinct subject versions one schema pulls in.
	maxRefDepth = 16
	maxRefs     = 256
)

// resolveRefs returns the texts of the schemas refs name and, recursively,
// of the schemas those reference, each subject version once, in
// dependency order. Subject versions are fetched once for the life of r
// (GET /subjects/{subject}/versions/{version}). A cycle, a chain deeper
// than maxRefDepth or more than maxRefs subject versions is an unsupported
// schema; a reference the registry does not have, an unknown one.
func (r *HTTPRegistry) resolveRefs(ctx context.Context, refs []schemaRef) ([]refText, error) {
	var (
		order  []refText
		done   = map[refKey]bool{}
		onPath = map[refKey]bool{}
		visit  func(refs []schemaRef, depth int) error
	)
	visit = func(refs []schemaRef, depth int) error {
		for _, ref := range refs {
			k := refKey{ref.Subject, ref.Version}
			switch {
			case done[k]:
				continue
			case ref.Subject == "":
				return fmt.Errorf("%w: a schema reference (name %q) has no subject", ErrUnsupportedSchema, ref.Name)
			case onPath[k]:
				return fmt.Errorf("%w: schema references form a cycle through subject %q version %d", ErrUnsupportedSchema, ref.Subject, ref.Version)
			case depth >= maxRefDepth:
				return fmt.Errorf("%w: schema references nest deeper than %d (at subject %q version %d)", ErrUnsupportedSchema, maxRefDepth, ref.Subject, ref.Version)
			case len(done) >= maxRefs:
				return fmt.Errorf("%w: a schema references more than %d subject versions", ErrUnsupportedSchema, maxRefs)
			}
			rs, err := r.refs.get(ctx, k, r.now, func(ctx context.Context) (*refSchema, error) {
				return r.fetchRef(ctx, k)
			})
			if err != nil {
				return fmt.Errorf("referenced subject %q version %d: %w", ref.Subject, ref.Version, err)
			}
			if rs.schemaType != "" && rs.schemaType != "AVRO" {
				return fmt.Errorf("%w: referenced subject %q version %d is %s, not AVRO", ErrUnsupportedSchema, ref.Subject, ref.Version, rs.schemaType)
			}
			onPath[k] = true
			if err := visit(rs.refs, depth+1); err != nil {
				return err
			}
			delete(onPath, k)
			done[k] = true
			order = append(order, refText{subject: ref.Subject, version: ref.Version, avsc: []byte(rs.schema)})
		}
		return nil
	}
	if err := visit(refs, 0); err != nil {
		return nil, err
	}
	return order, nil
}

// fetchRef is GET /subjects/{subject}/versions/{version}.
func (r *HTTPRegistry) fetchRef(ctx context.Context, k refKey) (*refSchema, error) {
	v := "latest"
	if k.version > 0 {
		v = strconv.Itoa(k.version)
	}
	var resp struct {
		Schema     string      `json:"schema"`
		SchemaType string      `json:"schemaType"`
		References []schemaRef `json:"references"`
	}
	if err := r.get(ctx, "/subjects/"+url.PathEscape(k.subject)+"/versions/"+v, &resp); err != nil {
		return nil, err
	}
	return &refSchema{schema: resp.Schema, schemaType: resp.SchemaType, refs: resp.References}, nil
}
