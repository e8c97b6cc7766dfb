// Package sipp runs SIPp (Debian's sip-tester, SIPp 3.x) as the client and
// the servers of sipedge's integration tests, and reads what it did.
//
// Every SIPp runs non-interactively (-nostdin) in the foreground as a child
// of the test (package proc: output in a file, killed with the test), with
// its own message log (-trace_msg -message_file) and statistics file
// (-trace_stat -stf, every second). A UAC also gets SIPp's own -timeout
// and -recv_timeout, and Wait has a deadline, so a hung SIPp never hangs
// the suite. Servers (UAS) run until Stop.
//
// Messages parses a message log into Message values, so a test can count
// per backend which Call-IDs and methods arrived; Stats reads the final
// counters of the statistics file.
package sipp

import (
	"bufio"
	"context"
	"embed"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/proc"
	"github.com/sipedge/sipedge/userspace/testutil"
)

// Scenario is a SIPp scenario: built in (-sn) or one of this package's
// testdata files (-sf).
type Scenario struct {
	builtin string
	file    string
}

func (s Scenario) String() string {
	if s.builtin != "" {
		return s.builtin
	}
	return s.file
}

var (
	// UAC is SIPp's built-in client: INVITE, ACK and BYE all go to the
	// target address with no Route, so a stateless proxy dispatches each.
	UAC = Scenario{builtin: "uac"}
	// UAS is SIPp's built-in server (180, 200, waits for ACK and BYE).
	UAS = Scenario{builtin: "uas"}
	// UACRecordRoute is UAC honouring Record-Route: ACK and BYE carry the
	// route set of the 200 and the 200's Contact as Request-URI.
	UACRecordRoute = Scenario{file: "uac_rr.xml"}
	// UASRecordRoute is UAS that copies Record-Route into its 180 and 200.
	UASRecordRoute = Scenario{file: "uas_rr.xml"}
	// UASSlow is UASRecordRoute waiting 300 ms before its 180.
	UASSlow = Scenario{file: "uas_slow.xml"}
	// UAS503 answers every INVITE with 503 and waits for the ACK.
	UAS503 = Scenario{file: "uas_503.xml"}
	// UAC503 sends an INVITE, expects 503, ACKs it and waits 2 s.
	UAC503 = Scenario{file: "uac_503.xml"}
	// UACLimit sends an INVITE and either, answered 200, ACKs it, holds
	// the call for -d milliseconds (SIPp's pause) and sends BYE, or,
	// refused 503 (a dialog limit), ACKs the 503; both are successful
	// calls.
	UACLimit = Scenario{file: "uac_limit.xml"}
	// UASOptions answers 200 to OPTIONS (a probe, at any time: each is a
	// call of its own) and to INVITE, and ends the call there (no ACK
	// expected).
	UASOptions = Scenario{file: "uas_options.xml"}

	// The dialog outcomes (tests/e2e_dialogs_test.go). Each client's
	// INVITE carries X-Tenant: [tenant]: run it with -key tenant VALUE.
	//
	// UACTenant is UAC (the whole call, BYE included) with X-Tenant.
	UACTenant = Scenario{file: "uac_tenant.xml"}
	// UACNoBye is UACTenant without its BYE: the call stays confirmed.
	UACNoBye = Scenario{file: "uac_nobye.xml"}
	// UACNoAck takes the 200 and sends no ACK; UASNoAck sends one 180
	// and one 200 (not retransmitted) and expects no ACK.
	UACNoAck = Scenario{file: "uac_noack.xml"}
	UASNoAck = Scenario{file: "uas_noack.xml"}
	// UAC486 expects 486 (after an optional 180) and ACKs it; UAS486
	// rings and rejects every INVITE with 486.
	UAC486 = Scenario{file: "uac_486.xml"}
	UAS486 = Scenario{file: "uas_486.xml"}
	// UACCancel cancels its INVITE 300 ms after the 180, takes the 200 to the
	// CANCEL and the 487, and ACKs the 487; UASCancel rings until the
	// CANCEL, then answers it 200 and the INVITE 487.
	UACCancel = Scenario{file: "uac_cancel.xml"}
	UASCancel = Scenario{file: "uas_cancel.xml"}
)

//go:embed testdata/*.xml
var scenarios embed.FS

// Options configures one SIPp.
type Options struct {
	// Name identifies the SIPp in logs and file names ("uas1").
	Name     string
	Scenario Scenario
	// Local is the address SIPp binds and writes in Via and Contact
	// (-i, -p).
	Local netip.AddrPort
	// Remote is the UAC's target, "ip:port"; empty for a UAS.
	Remote string
	// Calls (-m), Rate (-r, calls per second) and Limit (-l, concurrent
	// calls) shape a UAC's load; zero leaves SIPp's default.
	Calls, Rate, Limit int
	// Timeout is SIPp's global -timeout (a UAC then fails with
	// -timeout_error); Wait allows it plus a margin. Default: 30 s for a
	// UAC, 180 s for a UAS (a backstop: UAS are stopped by Stop).
	Timeout time.Duration
	// RecvTimeout fails a UAC call whose expected message does not come
	// (-recv_timeout); default 5 s.
	RecvTimeout time.Duration
	// Exec is a command prefix (nsenter into a network namespace).
	Exec []string
	// Dir holds the logs; default a new t.TempDir().
	Dir string
	// Args are appended to the command line.
	Args []string
}

// SIPp is one running SIPp.
type SIPp struct {
	Opts        Options
	MessageFile string
	StatFile    string
	*proc.Process
}

// NeedSIPp skips (or, under CI, fails) t when sipp is not installed.
func NeedSIPp(t testing.TB) {
	t.Helper()
	testutil.NeedCommand(t, "sipp", exec.LookPath)
}

// Start starts SIPp. For a UAS (no Remote) it waits until SIPp has bound
// its port, so a client may start right after.
func Start(t testing.TB, opts Options) *SIPp {
	t.Helper()
	NeedSIPp(t)
	isUAC := opts.Remote != ""
	if opts.Name == "" {
		opts.Name = "sipp-" + opts.Scenario.String()
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Timeout == 0 {
		opts.Timeout = 180 * time.Second
		if isUAC {
			opts.Timeout = 30 * time.Second
		}
	}
	if opts.RecvTimeout == 0 {
		opts.RecvTimeout = 5 * time.Second
	}
	s := &SIPp{
		Opts:        opts,
		MessageFile: filepath.Join(opts.Dir, opts.Name+".msg"),
		StatFile:    filepath.Join(opts.Dir, opts.Name+".csv"),
	}
	argv := []string{"sipp"}
	if opts.Scenario.builtin != "" {
		argv = append(argv, "-sn", opts.Scenario.builtin)
	} else {
		data, err := scenarios.ReadFile("testdata/" + opts.Scenario.file)
		if err != nil {
			t.Fatalf("sipp scenario %s: %v", opts.Scenario.file, err)
		}
		path := filepath.Join(opts.Dir, opts.Name+"-"+opts.Scenario.file)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		argv = append(argv, "-sf", path)
	}
	if isUAC {
		argv = append(argv, opts.Remote)
	}
	argv = append(argv,
		"-i", opts.Local.Addr().String(), "-p", strconv.Itoa(int(opts.Local.Port())),
		"-t", "u1",
		"-nostdin",
		"-trace_msg", "-message_file", s.MessageFile,
		"-trace_stat", "-stf", s.StatFile, "-fd", "1",
		"-trace_err", "-error_file", filepath.Join(opts.Dir, opts.Name+".err"),
		"-timeout", fmt.Sprintf("%ds", int(opts.Timeout.Seconds())),
	)
	if isUAC {
		argv = append(argv, "-timeout_error",
			"-recv_timeout", strconv.Itoa(int(opts.RecvTimeout.Milliseconds())))
		if opts.Calls > 0 {
			argv = append(argv, "-m", strconv.Itoa(opts.Calls))
		}
		if opts.Rate > 0 {
			argv = append(argv, "-r", strconv.Itoa(opts.Rate))
		}
		if opts.Limit > 0 {
			argv = append(argv, "-l", strconv.Itoa(opts.Limit))
		}
	}
	argv = append(argv, opts.Args...)
	s.Process = proc.Start(t, opts.Name, argv, proc.Options{Exec: opts.Exec, Dir: opts.Dir, MaxLog: 8 << 10})
	if !isUAC {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.WaitUDP(ctx, opts.Local); err != nil {
			s.LogOutput()
			t.Fatalf("sipp %s: %v", opts.Name, err)
		}
	}
	return s
}

// Result is how a UAC run ended.
type Result struct {
	// ExitCode is SIPp's: 0 all calls succeeded, 1 at least one failed,
	// 97 internal command, 99 no call processed, 255/254 fatal.
	ExitCode int
	Stats    Stats
}

// Wait waits for a UAC to finish (Timeout plus a margin at most) and
// returns its exit code and final statistics.
func (s *SIPp) Wait(t testing.TB) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.Opts.Timeout+15*time.Second)
	defer cancel()
	code, err := s.Process.Wait(ctx)
	if err != nil {
		t.Errorf("sipp %s: %v", s.Opts.Name, err)
	}
	st, err := ReadStats(s.StatFile)
	if err != nil {
		t.Errorf("sipp %s: %v", s.Opts.Name, err)
	}
	return Result{ExitCode: code, Stats: st}
}

// Messages parses the message log written so far.
func (s *SIPp) Messages(t testing.TB) Messages {
	t.Helper()
	msgs, err := ReadMessages(s.MessageFile)
	if err != nil {
		t.Fatalf("sipp %s: %v", s.Opts.Name, err)
	}
	return msgs
}

// WaitMessages polls the message log until done accepts it or timeout
// passes, and returns the last log read. Use it when the last message of
// a call may still be in flight after the client finished (an ACK the
// client sends as its very last action).
func (s *SIPp) WaitMessages(t testing.TB, timeout time.Duration, done func(Messages) bool) Messages {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs := s.Messages(t)
		if done(msgs) || time.Now().After(deadline) {
			return msgs
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stats are the cumulative counters of a SIPp statistics file.
type Stats struct {
	Created     int // TotalCallCreated
	Successful  int // SuccessfulCall(C)
	Failed      int // FailedCall(C)
	Retransmits int // Retransmissions(C)
	// Fields holds every column of the last line by its header name.
	Fields map[string]string
}

// ReadStats reads the last line of a -trace_stat file.
func ReadStats(path string) (Stats, error) {
	f, err := os.Open(path)
	if err != nil {
		return Stats{}, fmt.Errorf("read stats: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var header, last []string
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			continue
		}
		fields := strings.Split(line, ";")
		if header == nil {
			header = fields
			continue
		}
		last = fields
	}
	if err := sc.Err(); err != nil {
		return Stats{}, fmt.Errorf("read stats %s: %w", path, err)
	}
	if last == nil {
		return Stats{}, fmt.Errorf("stats %s: no data line", path)
	}
	st := Stats{Fields: make(map[string]string, len(header))}
	for i, h := range header {
		if i < len(last) {
			st.Fields[h] = last[i]
		}
	}
	num := func(k string) int {
		n, _ := strconv.Atoi(strings.TrimSpace(st.Fields[k]))
		return n
	}
	st.Created = num("TotalCallCreated")
	st.Successful = num("SuccessfulCall(C)")
	st.Failed = num("FailedCall(C)")
	st.Retransmits = num("Retransmissions(C)")
	return st, nil
}
