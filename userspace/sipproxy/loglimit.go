package sipproxy

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// logLimiter is the slow path's one rate limit for log lines written per
// message: a flood of bad or unroutable messages must not become a flood of
// log. Each distinct message text passes once per interval; the lines held
// back in between are counted, and the next line that passes carries that
// count as "suppressed". Keys are the constant message texts of the code,
// so the table stays as small as the number of call sites.
type logLimiter struct {
	every time.Duration // 0: one second
	now   func() time.Time

	mu   sync.Mutex
	keys map[string]*limitEntry
}

type limitEntry struct {
	last time.Time
	held int
}

// allow reports whether a line for key may be written at now, and how many
// were held back since the last one that was.
func (l *logLimiter) allow(key string, now time.Time) (int, bool) {
	every := l.every
	if every <= 0 {
		every = time.Second
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keys == nil {
		l.keys = make(map[string]*limitEntry)
	}
	e, ok := l.keys[key]
	if !ok {
		e = &limitEntry{}
		l.keys[key] = e
	}
	if !e.last.IsZero() && now.Sub(e.last) < every {
		e.held++
		return 0, false
	}
	n := e.held
	e.last, e.held = now, 0
	return n, true
}

// log writes msg at level through lg when the limiter lets it through.
func (l *logLimiter) log(lg *slog.Logger, level slog.Level, msg string, args ...any) {
	if !lg.Enabled(context.Background(), level) {
		return
	}
	now := time.Now
	if l.now != nil {
		now = l.now
	}
	n, ok := l.allow(msg, now())
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	lg.Log(context.Background(), level, msg, args...)
}

func (l *logLimiter) warn(lg *slog.Logger, msg string, args ...any) {
	l.log(lg, slog.LevelWarn, msg, args...)
}

func (l *logLimiter) info(lg *slog.Logger, msg string, args ...any) {
	l.log(lg, slog.LevelInfo, msg, args...)
}
