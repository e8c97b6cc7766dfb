package rpc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Params are a request's positional params. Positions in errors are
// 1-based ("param 2"), as an operator counts the words after the method.
//
// Accessors are lenient in the direction Kamailio's clients need: kamctl
// sends numeric-looking words as JSON numbers, so String accepts a number and
// returns its literal text ("12345"), and Int accepts a string holding a
// decimal integer ("2"). Every misuse returns an *Error with
// CodeInvalidParams.
type Params struct {
	vals []json.RawMessage
}

// NewParams builds Params from Go values, as a handler would receive them;
// meant for tests and for calling handlers in-process.
func NewParams(vals ...any) (Params, error) {
	p := Params{vals: make([]json.RawMessage, len(vals))}
	for i, v := range vals {
		b, err := json.Marshal(v)
		if err != nil {
			return Params{}, fmt.Errorf("param %d: %w", i+1, err)
		}
		p.vals[i] = b
	}
	return p, nil
}

// parseParams decodes the "params" member: absent or null gives no params,
// an array its elements, an object its values in order (names ignored, as
// Kamailio's jsonrpcs does). Anything else is an invalid request.
func parseParams(raw json.RawMessage) (Params, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return Params{}, nil
	}
	switch raw[0] {
	case '[':
		var vals []json.RawMessage
		if err := json.Unmarshal(raw, &vals); err != nil {
			return Params{}, fmt.Errorf("decode params array: %w", err)
		}
		return Params{vals: vals}, nil
	case '{':
		vals, err := objectValues(raw)
		if err != nil {
			return Params{}, fmt.Errorf("decode params object: %w", err)
		}
		return Params{vals: vals}, nil
	}
	return Params{}, fmt.Errorf("params must be an array or an object, not %s", kind(raw))
}

// objectValues returns the values of a JSON object in document order.
func objectValues(raw json.RawMessage) ([]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // '{'
		return nil, err
	}
	var vals []json.RawMessage
	for dec.More() {
		if _, err := dec.Token(); err != nil { // key
			return nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		vals = append(vals, v)
	}
	return vals, nil
}

// Len is the number of params.
func (p Params) Len() int { return len(p.vals) }

// Raw returns param i (0-based) as received, or nil when absent.
func (p Params) Raw(i int) json.RawMessage {
	if i < 0 || i >= len(p.vals) {
		return nil
	}
	return p.vals[i]
}

// Int returns param i (0-based) as an int: a JSON integer (2, 2.0, 2e0) or a
// string holding a decimal integer ("2").
func (p Params) Int(i int) (int, error) {
	raw, err := p.need(i)
	if err != nil {
		return 0, err
	}
	var s string
	switch raw[0] {
	case '"':
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, paramError(i, "want an integer, got %s", raw)
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, paramError(i, "want an integer, got %s", raw)
		}
		return n, nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		if n, err := strconv.Atoi(string(raw)); err == nil {
			return n, nil
		}
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
			return 0, paramError(i, "want an integer, got %s", raw)
		}
		return int(f), nil
	}
	return 0, paramError(i, "want an integer, got %s", kind(raw))
}

// String returns param i (0-based) as a string: a JSON string, or the
// literal text of a JSON number (kamctl sends "123" as 123).
func (p Params) String(i int) (string, error) {
	raw, err := p.need(i)
	if err != nil {
		return "", err
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", paramError(i, "want a string: %v", err)
		}
		return s, nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw), nil
	}
	return "", paramError(i, "want a string, got %s", kind(raw))
}

// OptInt is Int, or def when param i is absent.
func (p Params) OptInt(i, def int) (int, error) {
	if i >= len(p.vals) {
		return def, nil
	}
	return p.Int(i)
}

// OptString is String, or def when param i is absent.
func (p Params) OptString(i int, def string) (string, error) {
	if i >= len(p.vals) {
		return def, nil
	}
	return p.String(i)
}

// Max fails when more than n params were sent.
func (p Params) Max(n int) error {
	if len(p.vals) > n {
		return standardError(CodeInvalidParams, fmt.Sprintf("at most %d params, got %d", n, len(p.vals)))
	}
	return nil
}

func (p Params) need(i int) (json.RawMessage, error) {
	if i < 0 || i >= len(p.vals) {
		return nil, paramError(i, "missing (got %d params)", len(p.vals))
	}
	raw := bytes.TrimSpace(p.vals[i])
	if len(raw) == 0 {
		return nil, paramError(i, "empty")
	}
	return raw, nil
}

func paramError(i int, format string, args ...any) *Error {
	return standardError(CodeInvalidParams, fmt.Sprintf("param %d: ", i+1)+fmt.Sprintf(format, args...))
}

// kind names the JSON type of raw for error messages.
func kind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
