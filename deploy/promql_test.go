package deploy

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// metricNames returns the metric names a PromQL expression (with Grafana
// variables) selects. It is a tokenizer, not a parser, which is enough for
// the expressions of this directory: what is not a metric name is taken
// out first (strings, label matchers, ranges, by/without/on/ignoring/
// group_left/group_right label lists, Grafana variables), then every
// identifier left is a metric name unless a call follows it (a function or
// an aggregation) or it is a keyword. {__name__=...} selectors are refused.
func metricNames(expr string) ([]string, error) {
	if strings.Contains(expr, "__name__") {
		return nil, fmt.Errorf("a __name__ matcher is not supported: name the metric")
	}
	s := reString.ReplaceAllString(expr, `""`)
	s = reGrafanaVar.ReplaceAllString(s, " ")
	s = reMatchers.ReplaceAllString(s, " ")
	s = reRange.ReplaceAllString(s, " ")
	s = reGrouping.ReplaceAllString(s, " ")
	if strings.ContainsAny(s, "{}[]$`") {
		return nil, fmt.Errorf("could not take %q apart (left: %q)", expr, s)
	}
	seen := map[string]bool{}
	for _, m := range reToken.FindAllStringSubmatch(s, -1) {
		tok, call := m[1], m[2] != ""
		if tok == "" || call || promqlKeywords[strings.ToLower(tok)] {
			continue // a number, a function or aggregation, a keyword
		}
		seen[tok] = true
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

var (
	reString     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'` + "|`[^`]*`")
	reGrafanaVar = regexp.MustCompile(`\$\{[^}]*\}|\$\w+|\[\[\w+\]\]`)
	reMatchers   = regexp.MustCompile(`\{[^{}]*\}`)
	reRange      = regexp.MustCompile(`\[[^\[\]]*\]`)
	reGrouping   = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	// A number (durations and exponents included), or an identifier and
	// whether "(" follows it.
	reToken = regexp.MustCompile(`[0-9][0-9A-Za-z_.]*|([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?`)
)

// promqlKeywords are the identifiers of PromQL that are not metric names
// when no "(" follows them.
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true, "inf": true, "nan": true, "atan2": true,
}

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`tandem_sse_connections`, []string{"tandem_sse_connections"}},
		{`histogram_quantile(0.99, sum by (le) (rate(tandem_append_to_send_seconds_bucket{job=~"$job", instance=~"$instance"}[$__rate_interval])))`,
			[]string{"tandem_append_to_send_seconds_bucket"}},
		{`sum by (job, instance) (rate(a_total[5m])) / clamp_min(sum by (job, instance) (b), 1) > 0.01 and c offset 1h`,
			[]string{"a_total", "b", "c"}},
		{`max(x) without (instance) > 1e-3 unless on(instance) group_left(role) y > bool 2`, []string{"x", "y"}},
		{`sum(rate(x{le="0.5", s="a(b) {c} [d]", t='e'}[1m:30s]))`, []string{"x"}},
		{"sum by (job, instance) (increase(r_total{result=\"failed\"}[1h])) > 0\nand\nsum by (job, instance) (rate(h_total[5m])) > 0",
			[]string{"h_total", "r_total"}},
		{`sum(tandem_inbox_depth{job=~"${job}"} >= 0)`, []string{"tandem_inbox_depth"}},
		{`process_resident_memory_bytes{instance=~"$instance"}`, []string{"process_resident_memory_bytes"}},
		{`vector(1)`, []string{}},
	} {
		got, err := metricNames(tc.expr)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%q) = %q, %v; want %q", tc.expr, got, err, tc.want)
		}
	}
	if _, err := metricNames(`{__name__=~"tandem_.*"}`); err == nil {
		t.Errorf("a __name__ selector was accepted")
	}
}
