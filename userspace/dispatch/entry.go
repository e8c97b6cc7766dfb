package dispatch

// Entry is one destination as a source declares it: a dispatcher.list line,
// a database row or a dispatcher.add call. Build turns entries into a Snapshot.
type Entry struct {
	SetID    int
	URI      string
	Flags    Flags
	Priority int
	// Attrs is the raw attribute string, e.g. "duid=gw1;weight=50".
	Attrs string
	// Source names where the entry came from, e.g. "dispatcher.list:12" or
	// "rpc dispatcher.add"; errors about the entry start with it.
	Source string
}
