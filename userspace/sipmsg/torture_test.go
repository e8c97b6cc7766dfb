package sipmsg

import (
	"os"
	"path/filepath"
	"testing"
)

// TestTorture parses the RFC 4475 messages. Valid ones must frame and have
// every field sipmsg reads well formed; each invalid one must show the
// problem RFC 4475 describes where sipmsg looks at it (or frame cleanly
// when the problem is outside what it parses).
func TestTorture(t *testing.T) {
	type want struct {
		frameErr bool // Parse fails
		fieldErr bool // some field error is recorded
	}
	expect := map[string]want{
		// §3.1.2 invalid messages.
		"badinv01.dat":   {fieldErr: true}, // Via ;;,;,,
		"clerr.dat":      {},               // Content-Length past the datagram: the proxy's check
		"scalar02.dat":   {fieldErr: true}, // CSeq overflow (Max-Forwards 300 is the proxy's check)
		"scalarlg.dat":   {fieldErr: true}, // CSeq overflow
		"quotbal.dat":    {fieldErr: true}, // To with an unclosed quote
		"ltgtruri.dat":   {fieldErr: true}, // <Request-URI>
		"lwsruri.dat":    {fieldErr: true}, // blank inside the Request-URI
		"lwsstart.dat":   {fieldErr: true}, // two blanks in the request line
		"trws.dat":       {fieldErr: true}, // blank after the version
		"badaspec.dat":   {fieldErr: true}, // blanks inside <>
		"baddn.dat":      {frameErr: true}, // (this copy also lacks the empty line)
		"badvers.dat":    {},               // SIP/7.0: well formed, VersionOK false
		"bigcode.dat":    {fieldErr: true}, // status code 4294967301
		"ncl.dat":        {fieldErr: true}, // Content-Length: -999
		"badbranch.dat":  {},               // branch is only the cookie
		"mcl01.dat":      {},               // two Content-Lengths: counted, the proxy's check
		"multi01.dat":    {},               // duplicated headers: counted, the proxy's check
		"insuf.dat":      {},               // missing headers: the proxy's check
		"escruri.dat":    {},
		"baddate.dat":    {},
		"regbadct.dat":   {},
		"inv2543.dat":    {},
		"mismatch01.dat": {},
		"mismatch02.dat": {},
		"bcast.dat":      {},
		"bext01.dat":     {},
		"cparam01.dat":   {},
		"cparam02.dat":   {},
		"invut.dat":      {},
		"novelsc.dat":    {},
		"regaut01.dat":   {},
		"regescrt.dat":   {},
		"sdp01.dat":      {},
		"unkscm.dat":     {},
		"unksm2.dat":     {},
		"zeromf.dat":     {},
	}
	files, err := filepath.Glob("testdata/torture/*/*.dat")
	if err != nil || len(files) < 40 {
		t.Fatalf("torture corpus: %v, %d files", err, len(files))
	}
	for _, f := range files {
		name := filepath.Base(f)
		valid := filepath.Base(filepath.Dir(f)) == "valid"
		t.Run(filepath.Base(filepath.Dir(f))+"/"+name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var m Msg
			perr := Parse(b, &m)
			w, known := expect[name]
			if !valid && !known {
				t.Fatalf("no expectation for %s", name)
			}
			if (perr != nil) != w.frameErr {
				t.Fatalf("Parse error %v, want error %v", perr, w.frameErr)
			}
			if perr != nil {
				return
			}
			fieldErrs := []error{m.StartErr, m.TopVia.Err, m.CallIDErr, m.CSeq.Err, m.MaxForwardsErr, m.ContentLengthErr}
			if m.Has(KindFrom) {
				fieldErrs = append(fieldErrs, m.From.Err)
			}
			if m.Has(KindTo) {
				fieldErrs = append(fieldErrs, m.To.Err)
			}
			if m.NumRoutes > 0 {
				fieldErrs = append(fieldErrs, m.TopRoute.Err)
			}
			any := false
			for _, e := range fieldErrs {
				any = any || e != nil
			}
			if any != w.fieldErr {
				t.Errorf("field errors %v, want some: %v", fieldErrs, w.fieldErr)
			}
			if valid && (m.NumVias == 0 || !m.VersionOK) {
				t.Errorf("valid message: %d Vias, version ok %v", m.NumVias, m.VersionOK)
			}
			if name == "badvers.dat" && m.VersionOK {
				t.Error("SIP/7.0 taken for 2.0")
			}
		})
	}
}
