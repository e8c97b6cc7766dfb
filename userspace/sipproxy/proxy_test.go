package sipproxy

import (
	"testing"
	"time"
)

func TestLogLimiter(t *testing.T) {
	var l logLimiter
	t0 := time.Unix(1000, 0)
	steps := []struct {
		name     string
		key      string
		at       time.Duration
		wantOK   bool
		wantHeld int
	}{
		{name: "first line passes", key: "503", at: 0, wantOK: true},
		{name: "same second held", key: "503", at: 100 * time.Millisecond},
		{name: "held again", key: "503", at: 900 * time.Millisecond},
		{name: "other key passes", key: "404", at: 950 * time.Millisecond, wantOK: true},
		{name: "a second later passes with the count", key: "503", at: 1100 * time.Millisecond, wantOK: true, wantHeld: 2},
	}
	for _, st := range steps {
		n, ok := l.allow(st.key, t0.Add(st.at))
		if ok != st.wantOK || n != st.wantHeld {
			t.Errorf("%s: got (%d, %v), want (%d, %v)", st.name, n, ok, st.wantHeld, st.wantOK)
		}
	}
}
