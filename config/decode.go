package config

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/fanout-dev/fanout/redact"
)

// Problem is one thing wrong with a config file.
type Problem struct {
	Path string // e.g. sinks[1].url
	Line int    // 1-based; 0 if unknown
	Msg  string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s: %s (line %d)", p.Path, p.Msg, p.Line)
	}
	return fmt.Sprintf("%s: %s", p.Path, p.Msg)
}

// Error is every problem found in one file.
type Error struct {
	File     string
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problem(s)", e.File, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// decoder walks a yaml.Node tree into Go values by `yaml` tags, recording the
// line of every path it visits and a Problem for everything it cannot take.
type decoder struct {
	lines    map[string]int
	problems []Problem
	env      func(string) (string, bool)
	readFile func(string) ([]byte, error)
	// expanded holds every value that ${VAR} or ${file:PATH} put into the
	// config, by path: such values are never shown in a Problem, and header
	// values among them are secrets (see Config.Secrets).
	expanded map[string]string
	// fileRefs holds, by path, the file of every value that is exactly
	// ${file:PATH}: a sink's bearer token given so is read again when the
	// file changes.
	fileRefs map[string]string
}

func (d *decoder) problem(path string, line int, format string, args ...any) {
	d.problems = append(d.problems, Problem{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)})
}

var durationType = reflect.TypeOf(time.Duration(0))

var envRef = regexp.MustCompile(`\$\{(?:file:([^}]+)|([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?)\}`)

// expand replaces ${VAR}, ${VAR:-default} and ${file:PATH} (the file's
// contents, one trailing newline trimmed) in any scalar. An unset VAR without
// default, or a file that cannot be read, is a problem naming the variable or
// the path, never a value.
func (d *decoder) expand(path string, n *yaml.Node) string {
	if !strings.Contains(n.Value, "${") {
		return n.Value
	}
	changed := false
	out := envRef.ReplaceAllStringFunc(n.Value, func(m string) string {
		sub := envRef.FindStringSubmatch(m)
		changed = true
		if file := sub[1]; file != "" {
			b, err := d.readFile(file)
			if err != nil {
				d.problem(path, n.Line, "${file:%s} cannot be read: %s", file, fileReason(err))
				return ""
			}
			s := strings.TrimSuffix(string(b), "\n")
			return strings.TrimSuffix(s, "\r")
		}
		if v, ok := d.env(sub[2]); ok && v != "" {
			return v
		}
		if sub[3] != "" {
			return sub[4]
		}
		d.problem(path, n.Line, "environment variable %s is not set", sub[2])
		return ""
	})
	if changed {
		d.expanded[path] = out
		if m := envRef.FindStringSubmatch(n.Value); m != nil && m[0] == n.Value && m[1] != "" {
			d.fileRefs[path] = m[1]
		}
	}
	return out
}

// fileReason says why a file could not be read without the path twice (the
// problem names it) and without anything read from it.
func fileReason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// quote is how a problem shows the value s read at n: quoted as written in
// the file when it came from ${...}, which may hold a secret.
func (d *decoder) quote(path string, n *yaml.Node, s string) string {
	if _, ok := d.expanded[path]; ok {
		return fmt.Sprintf("%q (expanded)", n.Value)
	}
	return fmt.Sprintf("%q", s)
}

// withShownForms is vs and each value's other forms a problem may show it
// in: quoted by %q without the outer quotes (a quote, a backslash, a control
// character, invalid UTF-8), and re-serialized by redact.URL (a URL setting's
// problem shows that; it percent-encodes). Found by FuzzParse.
func withShownForms(vs []string) []string {
	out := vs
	for _, v := range vs {
		for _, f := range []string{v, redact.URL(v)} {
			if f != v {
				out = append(out, f)
			}
			if q := strconv.Quote(f); q[1:len(q)-1] != f {
				out = append(out, q[1:len(q)-1])
			}
		}
	}
	return out
}

func join(path, key string) string {
	if key == "" { // an empty (or a list, mapping or alias) key still needs a path
		key = `""`
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

func (d *decoder) decode(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	d.lines[path] = n.Line
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // explicit null: keep the zero value / default
	}
	switch {
	case v.Kind() == reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.decode(path, n, p.Elem())
		v.Set(p)
	case v.Type() == durationType:
		if n.Kind != yaml.ScalarNode {
			d.problem(path, n.Line, "want a duration like 10s, got %s", kindName(n))
			return
		}
		s := d.expand(path, n)
		dur, err := time.ParseDuration(s)
		if err != nil || dur < 0 {
			d.problem(path, n.Line, "%s is not a duration (like 250ms, 10s, 1m)", d.quote(path, n, s))
			return
		}
		v.SetInt(int64(dur))
	case v.Kind() == reflect.Struct:
		d.decodeStruct(path, n, v)
	case v.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.problem(path, n.Line, "want a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(fmt.Sprintf("%s[%d]", path, i), c, s.Index(i))
		}
		v.Set(s)
	case v.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.problem(path, n.Line, "want a mapping, got %s", kindName(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			ev := reflect.New(v.Type().Elem()).Elem()
			d.decode(join(path, k.Value), val, ev)
			m.SetMapIndex(reflect.ValueOf(k.Value), ev)
		}
		v.Set(m)
	default:
		d.decodeScalar(path, n, v)
	}
}

func (d *decoder) decodeStruct(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.problem(path, n.Line, "want a mapping, got %s", kindName(n))
		return
	}
	fields := map[string]int{}
	var names []string
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = i
		names = append(names, tag)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		idx, ok := fields[k.Value]
		if !ok {
			msg := "unknown key"
			if s := closest(k.Value, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.problem(p, k.Line, "%s", msg)
			continue
		}
		if seen[k.Value] {
			d.problem(p, k.Line, "key given twice")
			continue
		}
		seen[k.Value] = true
		d.decode(p, val, v.Field(idx))
		d.lines[p] = k.Line
	}
}

func (d *decoder) decodeScalar(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.ScalarNode {
		d.problem(path, n.Line, "want a single value, got %s", kindName(n))
		return
	}
	s := d.expand(path, n)
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Int, reflect.Int64, reflect.Int32:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			d.problem(path, n.Line, "%s is not an integer", d.quote(path, n, s))
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.problem(path, n.Line, "%s is not a number", d.quote(path, n, s))
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			d.problem(path, n.Line, "%s is not true or false", d.quote(path, n, s))
			return
		}
		v.SetBool(b)
	default:
		d.problem(path, n.Line, "cannot hold a %s", v.Kind())
	}
}

// closest suggests the known key nearest to a typo (edit distance ≤ 2).
func closest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if dd := distance(s, n); dd < bestD {
			best, bestD = n, dd
		}
	}
	return best
}

func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func osEnv(k string) (string, bool) { return os.LookupEnv(k) }

func reflectValue(p any) reflect.Value { return reflect.ValueOf(p).Elem() }
