package rpc

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestParams(t *testing.T) {
	tests := []struct {
		name    string
		params  string // the "params" member as sent
		call    func(Params) (any, error)
		want    any
		wantErr string // Error.Data of the -32602; empty: no error
	}{
		{name: "int from number", params: `[5]`, call: func(p Params) (any, error) { return p.Int(0) }, want: 5},
		{name: "int from negative", params: `[-5]`, call: func(p Params) (any, error) { return p.Int(0) }, want: -5},
		{name: "int from integral float", params: `[2.0]`, call: func(p Params) (any, error) { return p.Int(0) }, want: 2},
		{name: "int from exponent", params: `[1e2]`, call: func(p Params) (any, error) { return p.Int(0) }, want: 100},
		{name: "int from string", params: `["12"]`, call: func(p Params) (any, error) { return p.Int(0) }, want: 12},
		{name: "int from fraction", params: `[2.5]`, call: func(p Params) (any, error) { return p.Int(0) }, wantErr: "param 1: want an integer, got 2.5"},
		{name: "int from word", params: `["ip"]`, call: func(p Params) (any, error) { return p.Int(0) }, wantErr: `param 1: want an integer, got "ip"`},
		{name: "int from bool", params: `[true]`, call: func(p Params) (any, error) { return p.Int(0) }, wantErr: "param 1: want an integer, got a boolean"},
		{name: "int missing", params: `[1]`, call: func(p Params) (any, error) { return p.Int(1) }, wantErr: "param 2: missing (got 1 params)"},
		{name: "string from string", params: `["sip:a@b"]`, call: func(p Params) (any, error) { return p.String(0) }, want: "sip:a@b"},
		{name: "string from number keeps literal", params: `[12345678901234567890]`, call: func(p Params) (any, error) { return p.String(0) }, want: "12345678901234567890"},
		{name: "string from null", params: `[null]`, call: func(p Params) (any, error) { return p.String(0) }, wantErr: "param 1: want a string, got null"},
		{name: "string from object", params: `[{"a":1}]`, call: func(p Params) (any, error) { return p.String(0) }, wantErr: "param 1: want a string, got an object"},
		{name: "opt int absent", params: `[]`, call: func(p Params) (any, error) { return p.OptInt(0, 9) }, want: 9},
		{name: "opt int present", params: `[3]`, call: func(p Params) (any, error) { return p.OptInt(0, 9) }, want: 3},
		{name: "opt int wrong", params: `["x"]`, call: func(p Params) (any, error) { return p.OptInt(0, 9) }, wantErr: `param 1: want an integer, got "x"`},
		{name: "opt string absent", params: `null`, call: func(p Params) (any, error) { return p.OptString(2, "short") }, want: "short"},
		{name: "object values in order", params: `{"b":"x","a":"y"}`, call: func(p Params) (any, error) { return p.String(1) }, want: "y"},
		{name: "len of object", params: `{"b":"x","a":"y","c":1}`, call: func(p Params) (any, error) { return p.Len(), nil }, want: 3},
		{name: "max exceeded", params: `[1,2,3]`, call: func(p Params) (any, error) { return nil, p.Max(2) }, wantErr: "at most 2 params, got 3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseParams(json.RawMessage(tc.params))
			if err != nil {
				t.Fatalf("parseParams(%s): %v", tc.params, err)
			}
			got, err := tc.call(p)
			if tc.wantErr != "" {
				var e *Error
				if !errors.As(err, &e) || e.Code != CodeInvalidParams || e.Data != tc.wantErr {
					t.Fatalf("error %#v, want -32602 with data %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestNewParams(t *testing.T) {
	p, err := NewParams("ip", 2, json.Number("7"))
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := p.String(0); s != "ip" {
		t.Errorf("String(0) = %q", s)
	}
	if n, _ := p.Int(1); n != 2 {
		t.Errorf("Int(1) = %d", n)
	}
	if s, _ := p.String(2); s != "7" {
		t.Errorf("String(2) = %q", s)
	}
	if _, err := NewParams(func() {}); err == nil {
		t.Error("NewParams(func) did not fail")
	}
}
