package sipmsg

import (
	"errors"
	"testing"
)

func TestParseVia(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		err       error
		proto     string
		transport string
		sentBy    string
		host      string
		port      int
		branch    string
		rport     string // "-" absent, "" without value
		received  string
		maddr     string
		params    int
	}{
		{"plain", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1", nil, "SIP/2.0/UDP", "UDP", "192.0.2.1:5060", "192.0.2.1", 5060, "z9hG4bK1", "-", "", "", 1},
		{"no port", "SIP/2.0/TCP h.example.com;branch=z9hG4bK1", nil, "SIP/2.0/TCP", "TCP", "h.example.com", "h.example.com", 0, "z9hG4bK1", "-", "", "", 1},
		{"ipv6", "SIP/2.0/UDP [2001:db8::1]:5062;rport", nil, "SIP/2.0/UDP", "UDP", "[2001:db8::1]:5062", "[2001:db8::1]", 5062, "", "", "", "", 1},
		{"rport value, received, maddr", "SIP/2.0/UDP h;rport=5062;received=2001:db8::9;maddr=239.1.1.1;ttl=1", nil, "SIP/2.0/UDP", "UDP", "h", "h", 0, "", "5062", "2001:db8::9", "239.1.1.1", 4},
		{"blanks everywhere (wsinv)", "SIP  /   2.0\r\n /UDP\r\n    192.0.2.2 : 5060 ; branch = 390skdjuw ;rport", nil, "SIP  /   2.0\r\n /UDP", "UDP", "192.0.2.2 : 5060", "192.0.2.2", 5060, "390skdjuw", "", "", "", 2},
		{"quoted param", "SIP/2.0/UDP h;x=\"a;b\";branch=z9hG4bK2", nil, "SIP/2.0/UDP", "UDP", "h", "h", 0, "z9hG4bK2", "-", "", "", 2},
		{"first branch wins", "SIP/2.0/UDP h;branch=z9hG4bKa;branch=z9hG4bKb", nil, "SIP/2.0/UDP", "UDP", "h", "h", 0, "z9hG4bKa", "-", "", "", 2},
		{"no transport", "SIP/2.0 h", ErrVia, "", "", "", "", 0, "", "-", "", "", 0},
		{"no sent-by", "SIP/2.0/UDP", ErrVia, "", "", "", "", 0, "", "-", "", "", 0},
		{"no blank before sent-by", "SIP/2.0/UDPh", ErrVia, "", "", "", "", 0, "", "-", "", "", 0},
		{"empty param", "SIP/2.0/UDP h;;", ErrVia, "", "", "", "", 0, "", "-", "", "", 0},
		{"branch without value", "SIP/2.0/UDP h;branch", ErrVia, "", "", "", "", 0, "", "-", "", "", 0},
		{"branch empty value", "SIP/2.0/UDP h;branch=", ErrVia, "", "", "", "", 0, "", "-", "", "", 0},
		{"rport not a port", "SIP/2.0/UDP h;rport=70000", ErrVia, "", "", "", "", 0, "", "-", "", "", 0},
		{"rport zero", "SIP/2.0/UDP h;rport=0", ErrVia, "", "", "", "", 0, "", "-", "", "", 0},
		{"rport trailing letter", "SIP/2.0/UDP h;rport=6101x", ErrVia, "", "", "", "", 0, "", "-", "", "", 0},
		{"rport decimal point", "SIP/2.0/UDP h;rport=61.01", ErrVia, "", "", "", "", 0, "", "-", "", "", 0},
		{"rport colon", "SIP/2.0/UDP h;rport=6:101", ErrVia, "", "", "", "", 0, "", "-", "", "", 0},
		{"rport above 65535", "SIP/2.0/UDP h;rport=99999", ErrVia, "", "", "", "", 0, "", "-", "", "", 0},
		{"rport sign", "SIP/2.0/UDP h;rport=+6101", ErrVia, "", "", "", "", 0, "", "-", "", "", 0},
		{"port trailing letter", "SIP/2.0/UDP h:6101x", ErrVia, "", "", "", "", 0, "", "-", "", "", 0},
		{"port decimal point", "SIP/2.0/UDP h:61.01", ErrVia, "", "", "", "", 0, "", "-", "", "", 0},
		{"port colon", "SIP/2.0/UDP h:6:101", ErrVia, "", "", "", "", 0, "", "-", "", "", 0},
		{"port above 65535", "SIP/2.0/UDP h:99999", ErrVia, "", "", "", "", 0, "", "-", "", "", 0},
		{"port zero", "SIP/2.0/UDP h:0", ErrVia, "", "", "", "", 0, "", "-", "", "", 0},
		{"port too long", "SIP/2.0/UDP h:050600", ErrVia, "", "", "", "", 0, "", "-", "", "", 0},
		{"junk after sent-by", "SIP/2.0/UDP h x", ErrVia, "", "", "", "", 0, "", "-", "", "", 0},
		{"unclosed ipv6", "SIP/2.0/UDP [::1", ErrVia, "", "", "", "", 0, "", "-", "", "", 0},
		{"empty", "", ErrVia, "", "", "", "", 0, "", "-", "", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := []byte(tc.in)
			var v Via
			err := ParseVia(b, whole(b), &v)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			rport := "-"
			if v.HasRport {
				rport = v.Rport.String(b)
				if v.RportName.String(b) != "rport" {
					t.Errorf("rport name %q", v.RportName.String(b))
				}
			}
			if v.Proto.String(b) != tc.proto || v.Transport.String(b) != tc.transport || v.SentBy.String(b) != tc.sentBy ||
				v.Host.String(b) != tc.host || v.PortNum != tc.port || v.Branch.String(b) != tc.branch || rport != tc.rport ||
				v.Received.String(b) != tc.received || v.Maddr.String(b) != tc.maddr || v.NumParams != tc.params {
				t.Errorf("got proto %q transport %q sent-by %q host %q port %d branch %q rport %q received %q maddr %q params %d",
					v.Proto.String(b), v.Transport.String(b), v.SentBy.String(b), v.Host.String(b), v.PortNum,
					v.Branch.String(b), rport, v.Received.String(b), v.Maddr.String(b), v.NumParams)
			}
		})
	}
	t.Run("param spans", func(t *testing.T) {
		b := []byte("SIP/2.0/UDP h ; received = 1.2.3.4 ;lr")
		var v Via
		if err := ParseVia(b, whole(b), &v); err != nil {
			t.Fatal(err)
		}
		if v.ReceivedParam.String(b) != "; received = 1.2.3.4" || v.Param(1).Whole.String(b) != ";lr" || v.Param(1).HasValue || v.Param(9) != (Param{}) {
			t.Errorf("whole %q / %q", v.ReceivedParam.String(b), v.Param(1).Whole.String(b))
		}
	})
	t.Run("too many params", func(t *testing.T) {
		s := "SIP/2.0/UDP h"
		for i := 0; i <= MaxParams; i++ {
			s += ";p"
		}
		var v Via
		if err := ParseVia([]byte(s), whole([]byte(s)), &v); !errors.Is(err, ErrTooManyParams) {
			t.Errorf("err %v", err)
		}
	})
}
