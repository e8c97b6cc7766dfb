package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Names of the events the agent publishes (docs/events.md).
const (
	// DstDown: a dispatcher destination went from up to down (probing,
	// kamailio-behaviour §3.5), or was loaded down at start.
	DstDown = "dispatcher:dst-down"
	// DstUp: a dispatcher destination went from down to up (probing).
	DstUp = "dispatcher:dst-up"
	// LostEvent is not published: a subscriber gets it from Next after
	// events were dropped because its queue was full.
	LostEvent = "events:lost"
)

// Event is one record of the stream. Fields keep their order in the log,
// in JSON and in the hook's environment.
type Event struct {
	Name   string
	Time   time.Time
	Fields []Field
}

// Field is one named value of an event. Values are strings, integers,
// booleans or durations (written as Go durations, "12.5ms").
type Field struct {
	Key   string
	Value any
}

// F is a Field.
func F(key string, value any) Field { return Field{Key: key, Value: value} }

// New is an event named name at the current time.
func New(name string, fields ...Field) Event {
	return Event{Name: name, Time: time.Now(), Fields: fields}
}

// Get returns the value of the field key.
func (e Event) Get(key string) (any, bool) {
	for _, f := range e.Fields {
		if f.Key == key {
			return f.Value, true
		}
	}
	return nil, false
}

// logArgs are the fields as slog key/value pairs.
func (e Event) logArgs() []any {
	args := make([]any, 0, 2*len(e.Fields))
	for _, f := range e.Fields {
		args = append(args, f.Key, f.Value)
	}
	return args
}

// log writes e as one line: its name is the message.
func (e Event) log(l *slog.Logger) { l.Info(e.Name, e.logArgs()...) }

// MarshalJSON writes e as one flat object: "event" and "time" (RFC 3339,
// nanoseconds, UTC) first, then the fields in order. A field named event
// or time is dropped: the stream's two keys must keep their meaning.
func (e Event) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"event":`)
	writeJSON(&b, e.Name)
	b.WriteString(`,"time":`)
	writeJSON(&b, e.Time.UTC().Format(time.RFC3339Nano))
	for _, f := range e.Fields {
		if f.Key == "event" || f.Key == "time" {
			continue
		}
		b.WriteByte(',')
		writeJSON(&b, f.Key)
		b.WriteByte(':')
		v := f.Value
		if d, ok := v.(time.Duration); ok {
			v = d.String()
		}
		if err := writeJSON(&b, v); err != nil {
			return nil, fmt.Errorf("event %s field %s: %w", e.Name, f.Key, err)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// writeJSON appends v without HTML escaping (URIs keep their '&', '<').
func writeJSON(b *bytes.Buffer, v any) error {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	b.Truncate(b.Len() - 1) // Encode's newline
	return nil
}

// EnvPrefix starts the name of every variable Env sets.
const EnvPrefix = "SIPEDGE_"

// Env is e as environment variables: SIPEDGE_EVENT (the name),
// SIPEDGE_TIME (RFC 3339, UTC), then SIPEDGE_<KEY> for each field, the key
// upper-cased with every character other than a letter or a digit
// turned into '_' (iuid: SIPEDGE_IUID); fields named event or time are
// left out, as in MarshalJSON, and so are those that would map onto
// SIPEDGE_EVENT or SIPEDGE_TIME ("Event"): exec keeps the last of two
// equal names, so the field would replace the event's own. Values are as
// in the log:
// durations "12.5ms", numbers in decimal. A NUL in a value (which an
// environment cannot carry) is dropped.
func (e Event) Env() []string {
	env := []string{EnvPrefix + "EVENT=" + clean(e.Name), EnvPrefix + "TIME=" + e.Time.UTC().Format(time.RFC3339Nano)}
	for _, f := range e.Fields {
		k := envKey(f.Key)
		if k == "EVENT" || k == "TIME" {
			continue
		}
		env = append(env, EnvPrefix+k+"="+clean(fmt.Sprint(f.Value)))
	}
	return env
}

func envKey(k string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, k)
}

func clean(s string) string { return strings.ReplaceAll(s, "\x00", "") }
