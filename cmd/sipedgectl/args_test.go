package main

import (
	"encoding/json"
	"testing"
)

func TestConvertArgs(t *testing.T) {
	tests := []struct {
		name    string
		words   []string
		want    string // the params as JSON
		wantErr bool
	}{
		{name: "none", words: nil, want: `[]`},
		{name: "set_state", words: []string{"ip", "2", "sip:127.0.0.1:5080"}, want: `["ip",2,"sip:127.0.0.1:5080"]`},
		{name: "negative and zero", words: []string{"-3", "0"}, want: `[-3,0]`},
		{name: "big integer keeps its digits", words: []string{"12345678901234567890"}, want: `[12345678901234567890]`},
		{name: "leading zero stays a string", words: []string{"007"}, want: `["007"]`},
		{name: "float stays a string", words: []string{"1.5"}, want: `["1.5"]`},
		{name: "plus sign stays a string", words: []string{"+1"}, want: `["+1"]`},
		{name: "lone minus stays a string", words: []string{"-"}, want: `["-"]`},
		{name: "s: forces a string", words: []string{"s:5080", "s:"}, want: `["5080",""]`},
		{name: "i: forces an integer", words: []string{"i:007", "i:-2"}, want: `[7,-2]`},
		{name: "i: of a word", words: []string{"i:abc"}, wantErr: true},
		{name: "other prefixes untouched", words: []string{"sip:a@b", "x:1"}, want: `["sip:a@b","x:1"]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			params, err := convertArgs(tc.words)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("convertArgs(%q) = %v, want an error", tc.words, params)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.Marshal(params)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}
