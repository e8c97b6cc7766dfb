package sipproxy

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// A flood through the limiter writes one line a second per message, and
// each line after the first says how many it stands for.
func TestLogLimiterFlood(t *testing.T) {
	var out syncBuffer
	lg := slog.New(slog.NewTextHandler(&out, nil))
	now := time.Unix(1000, 0)
	l := logLimiter{now: func() time.Time { return now }}
	const n = 10000
	for i := range n {
		// 10,000 lines over 3 seconds, two kinds.
		now = time.Unix(1000, 0).Add(time.Duration(i) * 3 * time.Second / n)
		l.warn(lg, "failover: every destination failed", "call_id", i)
		l.info(lg, "failover: destination failed", "call_id", i)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines for %d messages of two kinds over 3 s, want 6:\n%s", len(lines), 2*n, out.String())
	}
	total := 0
	for _, line := range lines {
		var held int
		if i := strings.Index(line, "suppressed="); i >= 0 {
			if _, err := fmt.Sscan(line[i+len("suppressed="):], &held); err != nil {
				t.Fatalf("bad count in %s", line)
			}
		}
		total += 1 + held
	}
	// The lines held back after the last one that passed are not written yet.
	if total > 2*n || total < 2*(2*n/3) {
		t.Errorf("the lines account for %d messages of %d", total, 2*n)
	}
}
