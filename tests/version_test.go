package tests

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"regexp"
	"testing"
)

// TestVersion: the built agent's `sipedge version` names its commit, Go,
// cilium/ebpf and sipgo versions and the hash of the XDP object it
// carries (issue 13: what an operator quotes in a bug report).
func TestVersion(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(bins.Sipedge, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("sipedge version: %v\n%s", err, out)
	}
	obj, err := os.ReadFile("../userspace/dataplane/xdpsip_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(obj)
	for _, re := range []string{
		`(?m)^sipedge \S+$`,
		`(?m)^commit \S+$`,
		`(?m)^go go1\.\S+$`,
		`(?m)^github\.com/cilium/ebpf v\S+$`,
		`(?m)^github\.com/emiago/sipgo v\S+$`,
		`(?m)^xdp program sha256 ` + hex.EncodeToString(sum[:]) + `$`,
	} {
		if !regexp.MustCompile(re).Match(out) {
			t.Errorf("sipedge version: no line matching %s in:\n%s", re, out)
		}
	}
}
