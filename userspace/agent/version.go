package agent

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/sipedge/sipedge/userspace/dataplane"
)

// buildDeps are the modules whose versions `sipedge version` names, when
// the binary links them: they decide how the program is loaded and how SIP
// is parsed.
var buildDeps = []string{"github.com/cilium/ebpf", "github.com/emiago/sipgo", "golang.org/x/sys"}

// WriteVersion writes `sipedge version`: the version, the commit it was
// built from (with "+dirty" when the tree had changes), the Go version,
// the versions of the modules that matter and the XDP program's hash.
func WriteVersion(w io.Writer, version string) error {
	commit, goVersion := "unknown", "unknown"
	deps := map[string]string{}
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && commit != "unknown" {
			commit += "+dirty"
		}
		for _, d := range bi.Deps {
			v := d.Version
			if r := d.Replace; r != nil {
				// Named by the module it replaces; a local directory has
				// no version.
				v = r.Version
				if v == "" {
					v = "=> " + r.Path
				}
			}
			deps[d.Path] = v
		}
	}
	if _, err := fmt.Fprintf(w, "sipedge %s\ncommit %s\ngo %s\n", version, commit, goVersion); err != nil {
		return err
	}
	for _, p := range buildDeps {
		v, ok := deps[p]
		if !ok {
			continue
		}
		if _, err := fmt.Fprintf(w, "%s %s\n", p, v); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "xdp program sha256 %s\n", dataplane.ProgramHash())
	return err
}
