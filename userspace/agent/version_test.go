package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"runtime"
	"strings"
	"testing"
)

// TestWriteVersion: the build information names the Go version and the
// hash of the XDP object this tree holds (a test binary carries no module
// versions: tests/TestVersion checks them in the built agent).
func TestWriteVersion(t *testing.T) {
	var b bytes.Buffer
	if err := WriteVersion(&b, "1.2.3"); err != nil {
		t.Fatal(err)
	}
	obj, err := os.ReadFile("../dataplane/xdpsip_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(obj)
	out := b.String()
	for _, want := range []string{
		"sipedge 1.2.3\n",
		"\ncommit ",
		"\ngo " + runtime.Version() + "\n",
		"\nxdp program sha256 " + hex.EncodeToString(sum[:]) + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("version output lacks %q:\n%s", want, out)
		}
	}
}
