package rpc

import (
	"bytes"
	"context"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestCore(t *testing.T) {
	started := time.Date(2026, time.March, 4, 5, 6, 7, 0, time.Local)
	now := started.Add(90*time.Minute + 1500*time.Millisecond)
	s := New(nil)
	registerCore(s, "sipedge 0.1.0", started, func() time.Time { return now }) // prefix tolerated
	s.Register("dispatcher.list", nil)

	tests := []struct {
		name string
		req  string
		want string
	}{
		{
			name: "version",
			req:  `{"jsonrpc":"2.0","method":"core.version","id":1}`,
			want: `{"jsonrpc":"2.0","result":"sipedge 0.1.0 (` + runtime.GOOS + "/" + runtime.GOARCH + `)","id":1}`,
		},
		{
			name: "uptime",
			req:  `{"jsonrpc":"2.0","method":"core.uptime","id":1}`,
			want: `{"jsonrpc":"2.0","result":{"now":"Wed Mar  4 06:36:08 2026","up_since":"Wed Mar  4 05:06:07 2026","uptime":5401},"id":1}`,
		},
		{
			name: "list methods, sorted",
			req:  `{"jsonrpc":"2.0","method":"system.listMethods","id":1}`,
			want: `{"jsonrpc":"2.0","result":["core.uptime","core.version","dispatcher.list","system.listMethods"],"id":1}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(s.handleMessage(context.Background(), []byte(tc.req))); got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestPanicLogged(t *testing.T) {
	var buf bytes.Buffer
	s := New(slog.New(slog.NewTextHandler(&buf, nil)))
	s.Register("panic", func(context.Context, Params) (any, error) { panic("boom") })
	got := string(s.handleMessage(context.Background(), []byte(`{"jsonrpc":"2.0","method":"panic","id":1}`)))
	if !strings.Contains(got, `"code":-32603`) {
		t.Errorf("answer %s, want -32603", got)
	}
	for _, want := range []string{"rpc handler panicked", "method=panic", "panic=boom", "stack="} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, buf.String())
		}
	}
}
