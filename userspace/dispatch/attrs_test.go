package dispatch

import (
	"strings"
	"testing"
)

func TestParseAttrs(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Attrs
		wantErr []string // substrings, all must appear
	}{
		{name: "empty", in: "", want: Attrs{OCMax: 100}},
		{name: "duid and weight", in: "duid=gw1;weight=50",
			want: Attrs{Body: "duid=gw1;weight=50", DUID: "gw1", Weight: 50, OCMax: 100}},
		{name: "trailing semicolon dropped", in: "duid=gw1;",
			want: Attrs{Body: "duid=gw1;", DUID: "gw1", OCMax: 100}},
		{name: "names ignore case", in: "DUID=x;RWeight=3;MaxLoad=20",
			want: Attrs{Body: "DUID=x;RWeight=3;MaxLoad=20", DUID: "x", RWeight: 3, MaxLoad: 20, OCMax: 100}},
		{name: "unknown names only in body", in: "my=xyz;duid=abc",
			want: Attrs{Body: "my=xyz;duid=abc", DUID: "abc", OCMax: 100}},
		{name: "every string attribute",
			in: "socket=udp:10.0.0.1:5060;sockname=s1;ping_socket=udp:10.0.0.1:5070;ping_from=sip:ka@x;obproxy=sip:10.0.0.9",
			want: Attrs{Body: "socket=udp:10.0.0.1:5060;sockname=s1;ping_socket=udp:10.0.0.1:5070;ping_from=sip:ka@x;obproxy=sip:10.0.0.9",
				Socket: "udp:10.0.0.1:5060", SockName: "s1", PingSocket: "udp:10.0.0.1:5070", PingFrom: "sip:ka@x", OBProxy: "sip:10.0.0.9", OCMax: 100}},
		{name: "every number attribute", in: "latency=-5;cc=1;ocmin=10;ocmax=90;ocrate=20",
			want: Attrs{Body: "latency=-5;cc=1;ocmin=10;ocmax=90;ocrate=20", Latency: -5, CC: 1, OCMin: 10, OCMax: 90, OCRate: 20}},
		{name: "quoted value keeps semicolon", in: `ping_from="sip:a@b;x=1";duid=d`,
			want: Attrs{Body: `ping_from="sip:a@b;x=1";duid=d`, PingFrom: "sip:a@b;x=1", DUID: "d", OCMax: 100}},
		{name: "weight bounds accepted", in: "weight=1;rweight=100",
			want: Attrs{Body: "weight=1;rweight=100", Weight: 1, RWeight: 100, OCMax: 100}},
		{name: "name without value", in: "flag;duid=x",
			want: Attrs{Body: "flag;duid=x", DUID: "x", OCMax: 100}},
		{name: "weight 300", in: "weight=300", wantErr: []string{`weight "300" outside 1..100`}},
		{name: "weight 0", in: "weight=0", wantErr: []string{`weight "0" outside 1..100`}},
		{name: "rweight negative", in: "rweight=-1", wantErr: []string{`rweight "-1" outside 1..100`}},
		{name: "weight not a number", in: "weight=ten", wantErr: []string{`weight "ten" is not a number`}},
		{name: "maxload empty", in: "maxload=", wantErr: []string{`maxload "" is not a number`}},
		{name: "maxload negative", in: "maxload=-3", wantErr: []string{`maxload "-3" is negative`}},
		{name: "all errors reported", in: "weight=0;ocrate=x",
			wantErr: []string{`weight "0"`, `ocrate "x" is not a number`}},
		{name: "missing name", in: "=x", wantErr: []string{"has no name"}},
		{name: "ping_strict", in: "ping_strict=1", want: Attrs{Body: "ping_strict=1", PingStrict: true, OCMax: 100}},
		{name: "ping_strict 0", in: "PING_STRICT=0", want: Attrs{Body: "PING_STRICT=0", OCMax: 100}},
		{name: "ping_strict yes", in: "ping_strict=yes", wantErr: []string{`ping_strict "yes": want 0 or 1`}},
		{name: "ping_strict 2", in: "ping_strict=2", wantErr: []string{`ping_strict "2": want 0 or 1`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAttrs(tc.in)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, got %+v", got)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
