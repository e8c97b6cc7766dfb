package config

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/sipedge/sipedge/userspace/dispatch"
)

func TestParseDispatcherList(t *testing.T) {
	long := "sip:127.0.0.1:5080;x=" + strings.Repeat("a", 2000)
	tests := []struct {
		name string
		in   string
		want []dispatch.Entry
	}{
		{name: "empty", in: ""},
		{name: "comments and blanks", in: "# c\n\n   \t\n  # indented comment\r\n"},
		{
			name: "uri only",
			in:   "1 sip:127.0.0.1:5080",
			want: []dispatch.Entry{{SetID: 1, URI: "sip:127.0.0.1:5080", Source: "ds.list:1"}},
		},
		{
			name: "all fields",
			in:   "\n2 sip:10.0.0.1:5060 8 10 duid=gw1;weight=50\n",
			want: []dispatch.Entry{{SetID: 2, URI: "sip:10.0.0.1:5060", Flags: dispatch.FlagProbing, Priority: 10, Attrs: "duid=gw1;weight=50", Source: "ds.list:2"}},
		},
		{
			name: "tabs, CRLF and leading blanks",
			in:   "\t 1\tsip:a\t\t0x1\t3\tduid=a\r\n",
			want: []dispatch.Entry{{SetID: 1, URI: "sip:a", Flags: dispatch.FlagInactive, Priority: 3, Attrs: "duid=a", Source: "ds.list:1"}},
		},
		{
			name: "upper-case hex",
			in:   "1 sip:a 0X2C",
			want: []dispatch.Entry{{SetID: 1, URI: "sip:a", Flags: dispatch.FlagDisabled | dispatch.FlagProbing | dispatch.FlagNoPing, Source: "ds.list:1"}},
		},
		{
			name: "comments after fields",
			in:   "1 sip:a # uri\n1 sip:b 8 # flags\n1 sip:c 0 7 # priority\n1 sip:d 0 7 duid=d # attrs\n1 sip:e#glued\n",
			want: []dispatch.Entry{
				{SetID: 1, URI: "sip:a", Source: "ds.list:1"},
				{SetID: 1, URI: "sip:b", Flags: dispatch.FlagProbing, Source: "ds.list:2"},
				{SetID: 1, URI: "sip:c", Priority: 7, Source: "ds.list:3"},
				{SetID: 1, URI: "sip:d", Priority: 7, Attrs: "duid=d", Source: "ds.list:4"},
				{SetID: 1, URI: "sip:e", Source: "ds.list:5"},
			},
		},
		{
			name: "hash inside attrs",
			in:   "1 sip:a 0 0 duid=a#1;weight=5",
			want: []dispatch.Entry{{SetID: 1, URI: "sip:a", Attrs: "duid=a#1;weight=5", Source: "ds.list:1"}},
		},
		{
			name: "set 0 and leading zeros",
			in:   "0 sip:a\n007 sip:b 00 010",
			want: []dispatch.Entry{
				{SetID: 0, URI: "sip:a", Source: "ds.list:1"},
				{SetID: 7, URI: "sip:b", Priority: 10, Source: "ds.list:2"},
			},
		},
		{
			name: "line over 1024 bytes is one line",
			in:   "1 " + long + " 0 0 duid=x\n2 sip:b\n",
			want: []dispatch.Entry{
				{SetID: 1, URI: long, Attrs: "duid=x", Source: "ds.list:1"},
				{SetID: 2, URI: "sip:b", Source: "ds.list:2"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDispatcherList(strings.NewReader(tc.in), "/etc/sipedge/ds.list")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseDispatcherListErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{
			name: "no set id",
			in:   "sip:127.0.0.1:5080 0 0",
			want: []string{`ds.list:1: set id must be a number, got "sip:127.0.0.1:5080"`},
		},
		{
			name: "negative set id",
			in:   "-1 sip:a",
			want: []string{`ds.list:1: set id must be a number, got "-1"`},
		},
		{
			name: "set id then comment",
			in:   "\n3#x",
			want: []string{`ds.list:2: set 3 has no destination URI`},
		},
		{
			name: "NUL byte",
			in:   "1 sip:a\x00b",
			want: []string{`ds.list:1: line holds a NUL byte`},
		},
		{
			name: "flags garbage shifted into priority in Kamailio",
			in:   "1 sip:a 8 5\n1 sip:a 8,5",
			want: []string{`ds.list:2: flags must be a number (decimal or 0x hex), got "8,5"`},
		},
		{
			name: "flag letters",
			in:   "1 sip:a P",
			want: []string{`ds.list:1: flags must be a number (decimal or 0x hex), got "P"; letters are for RPC and scripts, write 8 here`},
		},
		{
			name: "flags outside mask",
			in:   "1 sip:a 0x40\n1 sip:a 99999999999999999999999",
			want: []string{
				`ds.list:1: flags 0x40 set bits outside mask 63 (1 inactive, 2 trying, 4 disabled, 8 probing, 16 no DNS, 32 no ping)`,
				`ds.list:2: flags 99999999999999999999999 set bits outside mask 63 (1 inactive, 2 trying, 4 disabled, 8 probing, 16 no DNS, 32 no ping)`,
			},
		},
		{
			name: "priority",
			in:   "1 sip:a 0 +5\n1 sip:a 0 3000000000",
			want: []string{
				`ds.list:1: priority must be a decimal number (digits only), got "+5"`,
				`ds.list:2: priority 3000000000 is out of range 0-2147483647`,
			},
		},
		{
			name: "text after attrs",
			in:   "1 sip:a 0 0 duid=a x",
			want: []string{`ds.list:1: unexpected text "x" after attrs "duid=a" (attrs must not contain blanks; start a comment with #)`},
		},
		{
			name: "absurdly long line",
			in:   "1 sip:a\n1 sip:" + strings.Repeat("b", 70000) + "\n1 sip:c 0 x\n",
			want: []string{
				`ds.list:2: line is 70006 bytes long; the limit is 65536`,
				`ds.list:3: priority must be a decimal number (digits only), got "x"`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDispatcherList(strings.NewReader(tc.in), "ds.list")
			if got != nil {
				t.Errorf("entries returned with errors: %+v", got)
			}
			assertErrors(t, err, tc.want)
		})
	}
}

func TestParseDispatcherListFiles(t *testing.T) {
	f, err := os.Open("testdata/good/kamailio.list")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, err := ParseDispatcherList(f, f.Name())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Source+" "+e.URI)
	}
	want := []string{
		"kamailio.list:8 sip:127.0.0.1:5080",
		"kamailio.list:9 sip:127.0.0.1:5082",
		"kamailio.list:11 sip:127.0.0.1:7070",
		"kamailio.list:12 sip:127.0.0.1:7072",
		"kamailio.list:13 sip:127.0.0.1:7074",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}

	c, err := LoadFS(os.DirFS("testdata/bad"), "listfile.yaml")
	if err != nil {
		t.Fatal(err)
	}
	entries, err = c.ReadDispatcherList()
	if entries != nil {
		t.Errorf("entries returned with errors")
	}
	assertErrors(t, err, []string{
		`bad.list:2: set id must be a number, got "sip:127.0.0.1:5080"`,
		`bad.list:3: set 1 has no destination URI`,
		`bad.list:4: set 2 has no destination URI`,
		`bad.list:5: set id must be a number, got "1a"`,
		`bad.list:6: flags must be a number (decimal or 0x hex), got "8x"`,
		`bad.list:7: flags 64 set bits outside mask 63 (1 inactive, 2 trying, 4 disabled, 8 probing, 16 no DNS, 32 no ping)`,
		`bad.list:8: flags must be a number (decimal or 0x hex), got "0x"`,
		`bad.list:9: flags must be a number (decimal or 0x hex), got "ip"; letters are for RPC and scripts, write 9 here`,
		`bad.list:10: priority must be a decimal number (digits only), got "-1"`,
		`bad.list:11: unexpected text "weight=50" after attrs "duid=a;" (attrs must not contain blanks; start a comment with #)`,
		`bad.list:12: set id 99999999999 is out of range 0-2147483647`,
		`bad.list:13: priority must be a decimal number (digits only), got "5x"`,
	})
}

func TestParseDispatcherListReadError(t *testing.T) {
	boom := errors.New("boom")
	r := iotest.TimeoutReader(strings.NewReader(strings.Repeat("1 sip:a\n", 1000)))
	_, err := ParseDispatcherList(r, "ds.list")
	if err == nil || !strings.HasPrefix(err.Error(), "read ds.list: ") {
		t.Errorf("err = %v", err)
	}
	_, err = ParseDispatcherList(iotest.ErrReader(boom), "ds.list")
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want %v", err, boom)
	}
}
