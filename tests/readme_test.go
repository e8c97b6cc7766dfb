package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/netns"
	"github.com/sipedge/sipedge/tests/proc"
	"github.com/sipedge/sipedge/tests/sipp"
	"github.com/sipedge/sipedge/userspace/testutil"
)

// tourBlock is one indented code block of README.md's "A quick tour".
type tourBlock struct {
	line  int      // README.md line of its first line
	lines []string // without the four-space indent
}

// isShell reports whether every line of the block is one of the commands
// the tour may use: the project's binaries and SIPp.
func (b tourBlock) isShell() bool {
	for _, l := range b.lines {
		f := strings.Fields(l)
		if len(f) == 0 || (f[0] != "sipp" && !strings.HasPrefix(f[0], "bin/")) {
			return false
		}
	}
	return true
}

// readmeTour returns the indented code blocks of README.md's section
// "## A quick tour".
func readmeTour(t *testing.T) []tourBlock {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []tourBlock
	in, prevIndented := false, false
	for i, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(l, "## "):
			in = l == "## A quick tour"
			continue
		case !in:
			continue
		}
		indented := strings.HasPrefix(l, "    ") && strings.TrimSpace(l) != ""
		if indented {
			if !prevIndented {
				blocks = append(blocks, tourBlock{line: i + 1})
			}
			blk := &blocks[len(blocks)-1]
			blk.lines = append(blk.lines, strings.TrimRight(l[4:], " "))
		}
		prevIndented = indented
	}
	if len(blocks) == 0 {
		t.Fatal(`README.md has no "## A quick tour" with indented commands`)
	}
	return blocks
}

// makeRun returns what `make run` runs, from the Makefile: the recipe of
// target run with $(BIN) and $(CONFIG) replaced by their defaults.
func makeRun(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	var recipe string
	assign := regexp.MustCompile(`^(\w+)\s*[?:]?=\s*(.*)$`)
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if m := assign.FindStringSubmatch(l); m != nil {
			vars[m[1]] = strings.TrimSpace(m[2])
		}
		if strings.HasPrefix(l, "run:") && i+1 < len(lines) {
			recipe = strings.TrimSpace(lines[i+1])
		}
	}
	if recipe == "" {
		t.Fatal("Makefile has no recipe for run")
	}
	recipe = regexp.MustCompile(`\$\((\w+)\)`).ReplaceAllStringFunc(recipe, func(v string) string {
		return vars[v[2:len(v)-1]]
	})
	if !strings.HasPrefix(recipe, "./bin/sipedge ") {
		t.Fatalf("make run runs %q; this test knows how to run ./bin/sipedge only", recipe)
	}
	return recipe
}

// TestReadmeTour runs README.md's quick tour as a user would: `make run`'s
// command, then every command of the tour's code blocks, in order, from
// one bash with job control on a terminal (a pty from script(1)), so a
// SIPp that stops on terminal I/O or a port clash between the commands
// fails the test. It checks that each command exits 0, that sipedgectl
// prints what the README's comments show (a "..." in a comment matches
// anything), that no job is left stopped, and that the agent exits 0 on
// SIGTERM. A config block of the tour (xdp:) must pass `sipedge check` in
// place of the example config's xdp: section.
//
// The commands run verbatim, with two substitutions: bin/ is a folder
// holding the test's builds (and examples/ the repository's), and
// everything runs in a network namespace, a mount namespace with a tmpfs
// on /run and a pid namespace of the test's own, so 127.0.0.1:5060, the
// SIPp ports and /run/sipedge/sipedge.sock are the test's alone and
// every process, SIPp's detached servers too, ends with it.
func TestReadmeTour(t *testing.T) {
	testutil.NeedRoot(t)
	sipp.NeedSIPp(t)
	for _, c := range []string{"bash", "script", "unshare", "nsenter"} {
		testutil.NeedCommand(t, c, exec.LookPath)
	}
	blocks := readmeTour(t)
	run := makeRun(t)

	work := t.TempDir()
	examples, err := filepath.Abs("../examples")
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.Mkdir(filepath.Join(work, "bin"), 0o755))
	must(t, os.Symlink(bins.Sipedge, filepath.Join(work, "bin", "sipedge")))
	must(t, os.Symlink(bins.Sipedgectl, filepath.Join(work, "bin", "sipedgectl")))
	must(t, os.Symlink(examples, filepath.Join(work, "examples")))

	var script strings.Builder
	var cmds []string
	fmt.Fprintf(&script, "set -m\n%s >agent.log 2>&1 &\n", run)
	script.WriteString("for i in $(seq 150); do [ -S /run/sipedge/sipedge.sock ] && break; sleep 0.1; done\n")
	for _, b := range blocks {
		if !b.isShell() {
			checkTourConfig(t, b)
			continue
		}
		for _, l := range b.lines {
			fmt.Fprintf(&script, "echo '### start %d'\n%s\necho \"### exit %d $?\"\n", len(cmds), l, len(cmds))
			cmds = append(cmds, l)
		}
	}
	script.WriteString("echo '### jobs'\njobs -l\necho '### end jobs'\nkill %1\nwait %1\necho \"### agent exit $?\"\n")
	// The servers SIPp detached (-bg) hold the terminal open, and script(1)
	// waits for it: end every process of the pid namespace but bash and
	// script (kill -1 reaches only those, and never pid 1).
	script.WriteString("kill -TERM -1 2>/dev/null\nexit 0\n")
	must(t, os.WriteFile(filepath.Join(work, "tour.sh"), []byte(script.String()), 0o644))

	ns := netns.New(t, "tour")
	p := proc.Start(t, "tour", []string{"unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--mount-proc", "--",
		"sh", "-ec", `mount -t tmpfs tmpfs /run; exec script -q -e -c "bash tour.sh" /dev/null`},
		proc.Options{Exec: ns.Exec(), Dir: work, MaxLog: 256 << 10})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	code, err := p.Wait(ctx)
	out := strings.ReplaceAll(p.Output(), "\r\n", "\n")
	logAgent := func() {
		b, _ := os.ReadFile(filepath.Join(work, "agent.log"))
		t.Logf("agent (%s) output:\n%s", run, b)
	}
	if err != nil || code != 0 {
		p.LogOutput()
		logAgent()
		t.Fatalf("the tour did not finish (exit %d, %v): a command hangs or a SIPp waits on the terminal", code, err)
	}

	for i, c := range cmds {
		section, status, ok := tourOutput(out, i)
		switch {
		case !ok:
			t.Errorf("README tour: %q did not run to its end", c)
		case status == "99" && strings.Contains(c, " -bg") && strings.Contains(section, "Background mode - PID=["):
			// SIPp's -bg: the parent exits 99 ("no call processed") once
			// the detached child runs.
		case status == "1" && sippMostlySucceeded(t, c, section):
			// SIPp exits 1 when any call failed. On a loaded machine (the
			// parallel -race suite) a call can fail for a lost datagram that
			// SIPp's built-in scenarios never recover (the UAS forgets a
			// call once it has answered its BYE); what the tour must show
			// is that calls go through, so 95 % successful calls do.
		case status != "0":
			t.Errorf("README tour: %q exited %s:\n%s", c, status, section)
		default:
			checkTourComment(t, c, section)
		}
	}
	if _, after, ok := strings.Cut(out, "### jobs\n"); ok {
		jobs, _, _ := strings.Cut(after, "### end jobs")
		if strings.Contains(jobs, "Stopped") {
			t.Errorf("README tour: jobs stopped on the terminal:\n%s", jobs)
		}
	}
	if !strings.Contains(out, "### agent exit 0\n") {
		logAgent()
		t.Errorf("README tour: the agent (%s) did not exit 0 after SIGTERM", run)
	}
	if t.Failed() {
		p.LogOutput()
	}
}

// sippMostlySucceeded reports whether the final statistics of a SIPp
// client's output show at least 95 % of its calls successful.
func sippMostlySucceeded(t *testing.T, cmd, output string) bool {
	t.Helper()
	count := func(name string) int {
		m := regexp.MustCompile(`(?m)^\s*`+name+`\s*\|\s*\d+\s*\|\s*(\d+)\s*$`).FindAllStringSubmatch(output, -1)
		if len(m) == 0 {
			return -1
		}
		n, _ := strconv.Atoi(m[len(m)-1][1])
		return n
	}
	ok, failed := count("Successful call"), count("Failed call")
	if ok < 0 || failed < 0 || ok+failed == 0 {
		return false
	}
	t.Logf("README tour: %q: %d calls successful, %d failed", cmd, ok, failed)
	return !strings.Contains(cmd, "-bg") && ok*100 >= 95*(ok+failed)
}

// tourOutput returns what command i printed and its exit status.
func tourOutput(out string, i int) (section, status string, ok bool) {
	start := fmt.Sprintf("### start %d\n", i)
	_, after, ok := strings.Cut(out, start)
	if !ok {
		return "", "", false
	}
	end := fmt.Sprintf("### exit %d ", i)
	section, after, ok = strings.Cut(after, end)
	if !ok {
		return section, "", false
	}
	status, _, _ = strings.Cut(after, "\n")
	return section, status, true
}

// checkTourComment checks a command's output against the JSON its README
// comment shows, if it shows any: `cmd   # {"a":1,...}, more words`.
func checkTourComment(t *testing.T, cmd, output string) {
	t.Helper()
	_, comment, ok := strings.Cut(cmd, " #")
	comment = strings.TrimSpace(comment)
	if !ok || !strings.HasPrefix(comment, "{") {
		return
	}
	want := comment[:strings.LastIndexByte(comment, '}')+1]
	parts := strings.Split(want, "...")
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	re := regexp.MustCompile("^" + strings.Join(parts, ".*") + "$")
	var got bytes.Buffer
	if err := json.Compact(&got, []byte(strings.TrimSpace(output))); err != nil {
		t.Errorf("README tour: %q printed no JSON (%v):\n%s", cmd, err, output)
		return
	}
	if !re.Match(got.Bytes()) {
		t.Errorf("README tour: %q printed\n%s\nthe README shows\n%s", cmd, got.String(), want)
	}
}

// checkTourConfig checks a config block of the tour: in place of the
// example config's section of the same name, `sipedge check` accepts it.
func checkTourConfig(t *testing.T, b tourBlock) {
	t.Helper()
	key, _, ok := strings.Cut(b.lines[0], ":")
	if !ok || strings.ContainsAny(key, " \t") {
		t.Errorf("README.md:%d: a tour block that is neither commands (sipp, bin/...) nor a config section:\n%s", b.line, strings.Join(b.lines, "\n"))
		return
	}
	example, err := os.ReadFile("../examples/sipedge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, found := strings.Cut(string(example), "\n"+key+":")
	if !found {
		t.Errorf("README.md:%d: the example config has no section %s: to replace", b.line, key)
		return
	}
	// The example's sections after the replaced one are left out (xdp:
	// is its last).
	dir := t.TempDir()
	list, err := os.ReadFile("../examples/dispatcher.list")
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "dispatcher.list"), list, 0o644))
	path := filepath.Join(dir, "sipedge.yaml")
	must(t, os.WriteFile(path, []byte(cfg+"\n"+strings.Join(b.lines, "\n")+"\n"), 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, code, err := proc.Run(ctx, bins.Sipedge, "check", "-c", path)
	if err != nil || code != 0 {
		t.Errorf("README.md:%d: the tour's config block fails sipedge check (exit %d, %v):\n%s\n%s", b.line, code, err, out, strings.Join(b.lines, "\n"))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
