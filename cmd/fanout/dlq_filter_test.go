package main

import (
	"errors"
	"flag"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/dlq"
	"github.com/fanout-dev/fanout/letter"
)

var dlqNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func TestFilterFlags(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    dlq.Filter
		wantErr string
	}{
		{args: nil, want: dlq.Filter{Sink: "profile"}},
		{args: []string{"--since", "2h"}, want: dlq.Filter{Sink: "profile", Since: dlqNow.Add(-2 * time.Hour)}},
		{args: []string{"--since", "7d", "--until", "2026-11-27T11:00:00Z"},
			want: dlq.Filter{Sink: "profile", Since: dlqNow.Add(-7 * 24 * time.Hour), Until: dlqNow.Add(-time.Hour)}},
		{args: []string{"--status", "503, 0,429", "--class", "permanent,too-large"},
			want: dlq.Filter{Sink: "profile", Statuses: []int{503, 0, 429}, Classes: []string{"permanent", "too-large"}}},
		{args: []string{"--since", "yesterday"}, wantErr: `--since: "yesterday" is neither`},
		{args: []string{"--until", "-2h"}, wantErr: "must be positive"},
		{args: []string{"--since", "1h", "--until", "2h"}, wantErr: "is not before --until"},
		{args: []string{"--status", "abc"}, wantErr: `--status: "abc" is not an HTTP status`},
		{args: []string{"--status", "42"}, wantErr: `--status: "42" is not an HTTP status`},
		{args: []string{"--class", "permanant"}, wantErr: `--class: "permanant" is not one of permanent, retries-exhausted`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			sel := filterFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			got, err := sel("profile", dlqNow)
			if tc.wantErr != "" {
				var ue usageError
				if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want a usage error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Sink != tc.want.Sink || !got.Since.Equal(tc.want.Since) || !got.Until.Equal(tc.want.Until) ||
				dlqInts(got.Statuses) != dlqInts(tc.want.Statuses) ||
				strings.Join(got.Classes, ",") != strings.Join(tc.want.Classes, ",") {
				t.Errorf("filter %+v, want %+v", got, tc.want)
			}
		})
	}
}

// --class accepts every reason the pipeline parks a record with (its exported
// list, which a pipeline test checks against the code), and nothing else.
func TestFilterClassAcceptsEveryParkedReason(t *testing.T) {
	var reasons []string
	for _, r := range letter.Reasons {
		reasons = append(reasons, string(r))
	}
	for _, class := range append([]string{strings.Join(reasons, ",")}, reasons...) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		sel := filterFlags(fs)
		if err := fs.Parse([]string{"--class", class}); err != nil {
			t.Fatal(err)
		}
		if f, err := sel("profile", dlqNow); err != nil || strings.Join(f.Classes, ",") != class {
			t.Errorf("--class %s: %v (classes %v)", class, err, f.Classes)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	sel := filterFlags(fs)
	if err := fs.Parse([]string{"--class", "template"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sel("profile", dlqNow); err == nil {
		t.Error("--class template accepted: nothing parks that class")
	}
}

func dlqInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}
