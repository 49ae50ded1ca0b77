package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestFileReference(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "redis-password")
	if err := os.WriteFile(pw, []byte("FILEPASSWORD-42\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(good, "redis:\n", "redis:\n  password: ${file:"+pw+"}\n", 1)
	cfg, err := Parse("f.yaml", []byte(y), env(map[string]string{"BROKER": "127.0.0.1:9092"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Redis.Password != "FILEPASSWORD-42" {
		t.Errorf("password = %q, want the file's contents without the trailing newline", cfg.Redis.Password)
	}

	missing := filepath.Join(dir, "nope")
	y = strings.Replace(good, "redis:\n", "redis:\n  password: ${file:"+missing+"}\n", 1)
	_, err = Parse("f.yaml", []byte(y), env(map[string]string{"BROKER": "127.0.0.1:9092"}))
	if err == nil || !strings.Contains(err.Error(), "redis.password: ${file:"+missing+"} cannot be read: no such file or directory") {
		t.Errorf("missing file: %v", err)
	}
}

// TestProblemsHideSecrets: no config error shows a secret or a value that
// came from ${...}: the examples.
func TestProblemsHideSecrets(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "tok")
	if err := os.WriteFile(tok, []byte("FILETOKENVALUE\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y := `
kafka: {brokers: ["127.0.0.1:9092"], topic: events}
redis: {db: "${REDIS_PASSWORD}", password: "LITERALREDISPW"}
run: {revoke_timeout: "${file:` + tok + `}", admin_token: short}
tracing: {otlp_endpoint: "htps://oteluser:OTELSECRET@127.0.0.1:4318?token=OTELQUERYTOKEN"}
sinks:
  - name: a
    url: "htps://user:SINKSECRET@127.0.0.1:5/x?token=SINKQUERYTOKEN"
    headers: {Authorization: "Bearer SINKBEARER"}
    max_in_flight: ${FLIGHT}
`
	_, err := Parse("s.yaml", []byte(y), env(map[string]string{"REDIS_PASSWORD": "ENVREDISPASSWORD", "FLIGHT": "ENVFLIGHTSECRET"}))
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, s := range []string{"ENVREDISPASSWORD", "FILETOKENVALUE", "OTELSECRET", "OTELQUERYTOKEN", "SINKSECRET", "SINKQUERYTOKEN", "ENVFLIGHTSECRET", "short"} {
		if strings.Contains(msg, s) {
			t.Errorf("the error shows %s:\n%s", s, msg)
		}
	}
	for _, want := range []string{
		`sinks[0].url: "htps://user:***@127.0.0.1:5/x?token=***" is not an absolute http(s) URL`,
		`redis.db: "${REDIS_PASSWORD}" (expanded) is not an integer`,
		`run.revoke_timeout: "${file:` + tok + `}" (expanded) is not a duration`,
		`run.admin_token: must be at least 16 characters`,
		`tracing.otlp_endpoint: "htps://oteluser:***@127.0.0.1:4318?token=***"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error lacks %q:\n%s", want, msg)
		}
	}
}

// TestSecretsListsEveryField: each secret field's value is among
// Config.Secrets. A new secret field is one row here and one line in Secrets.
func TestSecretsListsEveryField(t *testing.T) {
	y := `
kafka: {brokers: ["127.0.0.1:9092"], topic: events}
redis: {password: REDISPASSWORD1}
run: {admin_token: ADMINTOKEN0123456789}
schemas: {registry_url: "https://sr:REGISTRYPW@127.0.0.1:8081?key=REGISTRYQUERY"}
tracing: {otlp_endpoint: "https://u:OTELPASSWORD@127.0.0.1:4318?token=OTELQUERY", headers: {x-honeycomb-team: OTELHEADERKEY, Authorization: "Bearer OTELBEARER"}}
sinks:
  - name: a
    url: "https://user:SINKPASSWORD@127.0.0.1:5/x?token=SINKQUERY"
    headers: {Authorization: "Bearer SINKBEARER", X-Api-Key: SINKAPIKEY, X-Tenant: "${TENANT}", X-Plan: "{{ .Record.plan }}", X-Trace: plain}
`
	cfg, err := Parse("s.yaml", []byte(y), env(map[string]string{"TENANT": "EXPANDEDHEADER"}))
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Secrets()
	for _, want := range []string{"REDISPASSWORD1", "ADMINTOKEN0123456789", "REGISTRYPW", "REGISTRYQUERY", "OTELPASSWORD", "OTELQUERY",
		"OTELHEADERKEY", "OTELBEARER", "SINKPASSWORD", "SINKQUERY", "Bearer SINKBEARER", "SINKBEARER", "SINKAPIKEY", "EXPANDEDHEADER"} {
		if !slices.Contains(got, want) {
			t.Errorf("Secrets() lacks %s: %q", want, got)
		}
	}
	for _, not := range []string{"plain", "{{ .Record.plan }}"} {
		if slices.Contains(got, not) {
			t.Errorf("Secrets() holds %q, no secret", not)
		}
	}
}

func TestAdminExposed(t *testing.T) {
	for _, tc := range []struct {
		addr, token string
		refused     bool
	}{
		{"", "", false}, {"127.0.0.1:9090", "", false}, {"localhost:9090", "", false}, {"[::1]:9090", "", false},
		{":9090", "", true}, {"0.0.0.0:9090", "", true}, {"10.1.2.3:9090", "", true}, {"0.0.0.0:9090", "ADMINTOKEN0123456789", false},
	} {
		if err := AdminExposed(tc.addr, tc.token); (err != nil) != tc.refused {
			t.Errorf("AdminExposed(%q, token %v) = %v, want refused %v", tc.addr, tc.token != "", err, tc.refused)
		}
	}
}

// TestSecretsCoversSecretFields walks Config: every string field whose YAML
// name says it holds a credential (password, token, secret) must be listed
// by Secrets(), and so must the password and query values of every URL field
// (…url, …endpoint), so a secret field added later cannot be forgotten there.
func TestSecretsCoversSecretFields(t *testing.T) {
	cfg := &Config{Sinks: []Sink{{Signing: Signing{Secrets: []string{""}}}}}
	var set []string
	n := 0
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		switch v.Kind() {
		case reflect.Pointer:
			if v.IsNil() && v.Type().Elem().Kind() == reflect.Struct {
				v.Set(reflect.New(v.Type().Elem()))
			}
			if !v.IsNil() {
				walk(v.Elem(), path)
			}
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				f := v.Type().Field(i)
				name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
				if !f.IsExported() || name == "" || name == "-" {
					continue
				}
				walk(v.Field(i), path+"."+name)
			}
		case reflect.Slice:
			for i := 0; i < v.Len(); i++ {
				walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i))
			}
		case reflect.String:
			leaf := path[strings.LastIndex(path, ".")+1:]
			switch {
			case strings.HasSuffix(leaf, "_file"):
				// A path to a secret (token_file), not one.
			case strings.HasSuffix(leaf, "url") || strings.HasSuffix(leaf, "endpoint"):
				// A URL's password and query values are its secrets.
				n++
				pw, q := fmt.Sprintf("FIELDSECRET%02d-pw", n), fmt.Sprintf("FIELDSECRET%02d-q", n)
				v.SetString("https://u:" + pw + "@127.0.0.1:1/x?k=" + q)
				set = append(set, path+"="+pw, path+"="+q)
			case strings.Contains(leaf, "password") || strings.Contains(leaf, "token") || strings.Contains(leaf, "secret"):
				n++
				val := fmt.Sprintf("FIELDSECRET%02d-%s", n, leaf)
				v.SetString(val)
				set = append(set, path+"="+val)
			}
		}
	}
	walk(reflect.ValueOf(cfg).Elem(), "")
	if len(set) < 3 {
		t.Fatalf("found only %v: the walk is broken", set)
	}
	got := cfg.Secrets()
	for _, s := range set {
		path, val, _ := strings.Cut(s, "=")
		if !slices.Contains(got, val) {
			t.Errorf("%s holds a secret, but Secrets() does not list it", path)
		}
	}
}

// tracing.headers: a bad name or a value with CR/LF is named by path, never
// with the value (every value is a secret).
func TestTracingHeadersProblems(t *testing.T) {
	y := "kafka: {brokers: [\"127.0.0.1:9092\"], topic: events}\n" +
		"tracing: {otlp_endpoint: \"http://127.0.0.1:4318\", headers: {\"bad name\": x, Authorization: \"Bearer OTELSECRET\\r\\nX: y\"}}\n" +
		"sinks: [{name: a, url: \"http://127.0.0.1:5/x\"}]\n"
	_, err := Parse("t.yaml", []byte(y), env(nil))
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{"tracing.headers.bad name: is not a valid header name", "tracing.headers.Authorization: holds a control character"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "OTELSECRET") {
		t.Errorf("the error shows the header's value:\n%s", msg)
	}
}
