package main

import (
	"flag"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fanout-dev/fanout/dlq"
	"github.com/fanout-dev/fanout/letter"
)

// errorClasses are the values of the fanout-error-class header: the reasons
// the pipeline parks a record with.
var errorClasses = func() []string {
	c := make([]string, len(letter.Reasons))
	for i, r := range letter.Reasons {
		c[i] = string(r)
	}
	return c
}()

// filterFlags defines the selection flags list and redrive share. The
// returned func validates them (usage errors) once the flags are parsed.
func filterFlags(fs *flag.FlagSet) func(sink string, now time.Time) (dlq.Filter, error) {
	since := fs.String("since", "", "only letters parked at or after `T`: RFC 3339, or a duration back from now (90m, 2h, 7d)")
	until := fs.String("until", "", "only letters parked before `T`: RFC 3339, or a duration back from now")
	status := fs.String("status", "", "only these HTTP `statuses`, comma-separated (0: no HTTP answer)")
	class := fs.String("class", "", "only these error `classes`, comma-separated: "+strings.Join(errorClasses, ", "))
	return func(sink string, now time.Time) (dlq.Filter, error) {
		f := dlq.Filter{Sink: sink}
		var err error
		if f.Since, err = dlq.ParseWhen(*since, now); err != nil {
			return f, usagef("--since: %v", err)
		}
		if f.Until, err = dlq.ParseWhen(*until, now); err != nil {
			return f, usagef("--until: %v", err)
		}
		if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
			return f, usagef("--since %s is not before --until %s", f.Since.Format(time.RFC3339), f.Until.Format(time.RFC3339))
		}
		for _, s := range dlq.SplitList(*status) {
			n, err := strconv.Atoi(s)
			if err != nil || (n != 0 && (n < 100 || n > 599)) {
				return f, usagef("--status: %q is not an HTTP status (100-599, or 0 for none)", s)
			}
			f.Statuses = append(f.Statuses, n)
		}
		for _, c := range dlq.SplitList(*class) {
			if !slices.Contains(errorClasses, c) {
				return f, usagef("--class: %q is not one of %s", c, strings.Join(errorClasses, ", "))
			}
			f.Classes = append(f.Classes, c)
		}
		return f, nil
	}
}
