package rpc

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sipedge/sipedge/userspace/dispatch"
)

// Kamailio's answers to dispatcher calls that succeed with nothing to show
// (dispatcher.c prints them with rpl_printf, so the result is a string).
const (
	okReloaded = "Ok. Dispatcher successfully reloaded."
	okState    = "Ok. Dispatcher state updated."
	okAdded    = "Ok. Dispatcher destination added."
	okRemoved  = "Ok. Dispatcher destination removed."
)

// DispatcherList is dispatcher.list's result. Every type below keeps
// Kamailio's key names and order (ds_rpc_print_set): encoding/json writes
// struct fields in declaration order.
type DispatcherList struct {
	NRSets  int                `json:"NRSETS"`
	Records []DispatcherRecord `json:"RECORDS"`
}

// DispatcherRecord wraps one set, as Kamailio nests it.
type DispatcherRecord struct {
	Set DispatcherSet `json:"SET"`
}

// DispatcherSet is one destination set, destinations in selection order.
type DispatcherSet struct {
	ID      int                `json:"ID"`
	Targets []DispatcherTarget `json:"TARGETS"`
}

// DispatcherTarget wraps one destination, as Kamailio nests it.
type DispatcherTarget struct {
	Dest DispatcherDest `json:"DEST"`
}

// DispatcherDest is one destination. Full is set by "full" only; Attrs
// when the destination has an attribute string (unless "short"), and
// always with "full"; Latency whenever ds_ping_latency_stats is on.
type DispatcherDest struct {
	IDX      int    `json:"IDX"`
	URI      string `json:"URI"`
	Flags    string `json:"FLAGS"`
	Priority int    `json:"PRIORITY"`
	IUID     string `json:"IUID"`
	*DispatcherDestFull
	Attrs   *DispatcherAttrs   `json:"ATTRS,omitempty"`
	Latency *DispatcherLatency `json:"LATENCY,omitempty"`
	// Runtime is present when call load is on (ds_hash_size > 0), as in
	// Kamailio.
	Runtime *DispatcherRuntime `json:"RUNTIME,omitempty"`
	// NotProbed (no Kamailio twin, kamailio#4212) says why a destination
	// the probing mode and its flags ask to probe is not probed: no
	// listener of its address family, a socket attribute naming no
	// listener, no address. Absent when it is probed or not meant to be.
	NotProbed string `json:"NOT_PROBED,omitempty"`
}

// DispatcherLatency are a destination's probe latency statistics, in
// milliseconds (dispatch.LatencyStats), in Kamailio's order and types:
// AVG, STD, EST floats, MAX and TIMEOUT integers.
type DispatcherLatency struct {
	Avg     float32 `json:"AVG"`
	Std     float32 `json:"STD"`
	Est     float32 `json:"EST"`
	Max     int     `json:"MAX"`
	Timeout uint32  `json:"TIMEOUT"`
}

// DispatcherRuntime is a destination's call load (algorithm 10): the calls
// charged to its duid in its set that have not ended. A destination
// without a duid shows 0.
type DispatcherRuntime struct {
	DLGLoad int64 `json:"DLGLOAD"`
}

// DispatcherDestFull are the address fields "full" adds.
type DispatcherDestFull struct {
	Host    string `json:"HOST"`
	IPAddr  string `json:"IPADDR"` // "" when not resolved
	Port    int    `json:"PORT"`   // 0 when the URI has none
	ProtoID int    `json:"PROTOID"`
}

// DispatcherAttrs are a destination's attributes; unset strings are null.
type DispatcherAttrs struct {
	Body         *string `json:"BODY"`
	DUID         *string `json:"DUID"`
	ProbingCount int     `json:"PROBING_COUNT"`
	MaxLoad      int     `json:"MAXLOAD"`
	Weight       int     `json:"WEIGHT"`
	RWeight      int     `json:"RWEIGHT"`
	Socket       *string `json:"SOCKET"`
	SockName     *string `json:"SOCKNAME"`
	PingSocket   *string `json:"PING_SOCKET"`
	OBProxy      *string `json:"OBPROXY"`
	OCMin        int     `json:"OCMIN"`
	OCMax        int     `json:"OCMAX"`
}

// HashResult is dispatcher.hash's result. HashID is the uint32 hash
// reinterpreted as int32, as Kamailio prints it; Slot is computed from the
// unsigned hash.
type HashResult struct {
	HashID int32  `json:"hashid"`
	Slot   uint32 `json:"slot"`
}

// PingState is dispatcher.ping_active's result: OldPingState alone when
// only asked, both when set.
type PingState struct {
	NewPingState *int `json:"NewPingState,omitempty"`
	OldPingState int  `json:"OldPingState"`
}

// protoID maps a transport to Kamailio's protocol id (ip_addr.h PROTO_*),
// printed as PROTOID; 0 is PROTO_NONE (transport left open).
func protoID(transport string) int {
	switch strings.ToLower(transport) {
	case "udp":
		return 1
	case "tcp":
		return 2
	case "tls":
		return 3
	case "sctp":
		return 4
	case "ws":
		return 5
	case "wss":
		return 6
	}
	return 0
}

// listMode is dispatcher.list's optional argument.
type listMode int

const (
	listNormal listMode = iota
	listShort
	listFull
)

// RegisterDispatcher registers the dispatcher.* methods on s, backed by d.
// reload re-reads the destination list (nil: dispatcher.reload fails with
// Kamailio's "Reload Failed"); reloadDelta is Kamailio's reload_delta, the
// least time between two reloads (0: no limit), which the returned value
// changes later.
func RegisterDispatcher(s *Server, d *dispatch.Dispatcher, reload func(ctx context.Context) error, reloadDelta time.Duration) *DispatcherMethods {
	return registerDispatcher(s, d, reload, reloadDelta, time.Now)
}

// DispatcherMethods are the registered dispatcher.* methods.
type DispatcherMethods struct{ h *dispatcherRPC }

// SetNotProbed installs what dispatcher.list shows as NOT_PROBED: fn
// returns why the destination (set, IUID) is not probed, "" when it is
// (nil: never shown).
func (m *DispatcherMethods) SetNotProbed(fn func(setID int, iuid string) string) {
	m.h.mu.Lock()
	defer m.h.mu.Unlock()
	m.h.notProbed = fn
}

// SetReloadDelta changes reload_delta (a config reload).
func (m *DispatcherMethods) SetReloadDelta(delta time.Duration) {
	m.h.mu.Lock()
	defer m.h.mu.Unlock()
	m.h.delta = delta
}

func registerDispatcher(s *Server, d *dispatch.Dispatcher, reload func(ctx context.Context) error, reloadDelta time.Duration, now func() time.Time) *DispatcherMethods {
	h := &dispatcherRPC{d: d, reload: reload, delta: reloadDelta, now: now}
	s.Register("dispatcher.list", h.list)
	s.Register("dispatcher.reload", h.reloadList)
	s.Register("dispatcher.set_state", h.setState)
	s.Register("dispatcher.add", h.add)
	s.Register("dispatcher.remove", h.remove)
	s.Register("dispatcher.hash", h.hash)
	s.Register("dispatcher.ping_active", h.pingActive)
	return &DispatcherMethods{h: h}
}

type dispatcherRPC struct {
	d      *dispatch.Dispatcher
	reload func(ctx context.Context) error
	now    func() time.Time

	mu         sync.Mutex
	delta      time.Duration
	lastReload time.Time
	notProbed  func(setID int, iuid string) string
}

// list: dispatcher.list [short|full]
func (h *dispatcherRPC) list(_ context.Context, p Params) (any, error) {
	if err := p.Max(1); err != nil {
		return nil, err
	}
	word, err := p.OptString(0, "")
	if err != nil {
		return nil, err
	}
	mode := listNormal
	switch strings.ToLower(word) {
	case "":
	case "short":
		mode = listShort
	case "full":
		mode = listFull
	default:
		return nil, paramError(0, "mode %q: want short or full", word)
	}

	var sets []*dispatch.Set
	latency := false
	if snap := h.d.Snapshot(); snap != nil {
		sets = snap.Sets()
		latency = snap.Options().LatencyStats
	}
	if len(sets) == 0 {
		return nil, &Error{Code: CodeFault, Message: msgNoSets}
	}
	// Kamailio walks its AVL tree in post-order (1,2,3 print as 1,3,2);
	// sipedge lists sets by ascending ID.
	slices.SortFunc(sets, func(a, b *dispatch.Set) int { return cmp.Compare(a.ID, b.ID) })

	h.mu.Lock()
	notProbed := h.notProbed
	h.mu.Unlock()
	loads := h.d.CallLoad()
	out := DispatcherList{NRSets: len(sets), Records: make([]DispatcherRecord, 0, len(sets))}
	for _, set := range sets {
		targets := make([]DispatcherTarget, 0, len(set.Dests))
		// Congestion control changes rweights before a snapshot carries
		// them: list the current ones.
		rw := h.d.RWeights(set)
		for i := range set.Dests {
			dest := listDest(&set.Dests[i], mode)
			if dest.Attrs != nil {
				dest.Attrs.RWeight = rw[i]
			}
			if latency {
				s := h.d.Latency(set.ID, set.Dests[i].URI)
				dest.Latency = &DispatcherLatency{Avg: s.Avg, Std: s.Std, Est: s.Est, Max: s.Max, Timeout: s.Timeout}
			}
			if loads != nil {
				dest.Runtime = &DispatcherRuntime{}
				if duid := set.Dests[i].Attrs.DUID; duid != "" {
					dest.Runtime.DLGLoad = loads.Load(set.ID, duid)
				}
			}
			if notProbed != nil {
				dest.NotProbed = notProbed(set.ID, set.Dests[i].IUID)
			}
			targets = append(targets, DispatcherTarget{Dest: dest})
		}
		out.Records = append(out.Records, DispatcherRecord{Set: DispatcherSet{ID: set.ID, Targets: targets}})
	}
	return out, nil
}

func listDest(d *dispatch.Destination, mode listMode) DispatcherDest {
	out := DispatcherDest{
		IDX:      d.Index,
		URI:      d.URI,
		Flags:    d.Flags.String(),
		Priority: d.Priority,
		IUID:     d.IUID,
	}
	if mode == listFull {
		full := &DispatcherDestFull{Host: d.Host, Port: d.Port, ProtoID: protoID(d.Transport)}
		if d.Addr.IsValid() {
			full.IPAddr = d.Addr.Addr().String()
		}
		out.DispatcherDestFull = full
	}
	if mode == listFull || (mode == listNormal && d.Attrs.Body != "") {
		a := d.Attrs
		out.Attrs = &DispatcherAttrs{
			Body:         nullable(a.Body),
			DUID:         nullable(a.DUID),
			ProbingCount: d.ProbingCount,
			MaxLoad:      a.MaxLoad,
			Weight:       a.Weight,
			RWeight:      a.RWeight,
			Socket:       nullable(a.Socket),
			SockName:     nullable(a.SockName),
			PingSocket:   nullable(a.PingSocket),
			OBProxy:      nullable(a.OBProxy),
			OCMin:        a.OCMin,
			OCMax:        a.OCMax,
		}
	}
	return out
}

// nullable maps an unset string attribute to JSON null, as Kamailio prints it.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// reloadList: dispatcher.reload
func (h *dispatcherRPC) reloadList(ctx context.Context, p Params) (any, error) {
	if err := p.Max(0); err != nil {
		return nil, err
	}
	if h.reload == nil {
		return nil, &Error{Code: CodeFault, Message: msgReloadFailed, Data: "no reload source configured"}
	}
	if err := h.startReload(); err != nil {
		return nil, err
	}
	if err := h.reload(ctx); err != nil {
		return nil, &Error{Code: CodeFault, Message: msgReloadFailed, Data: err.Error()}
	}
	return okReloaded, nil
}

// startReload applies reload_delta: like Kamailio, the clock starts when a
// reload is attempted, whether or not it then succeeds.
func (h *dispatcherRPC) startReload() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	if h.delta > 0 && !h.lastReload.IsZero() {
		if wait := h.lastReload.Add(h.delta).Sub(now); wait > 0 {
			return Errorf(CodeFault, msgOngoingReload, "last reload %s ago; reload_delta is %s, retry in %s",
				now.Sub(h.lastReload).Round(time.Millisecond), h.delta, wait.Round(time.Millisecond))
		}
	}
	h.lastReload = now
	return nil
}

// setState: dispatcher.set_state state group addr|all
func (h *dispatcherRPC) setState(_ context.Context, p Params) (any, error) {
	if err := p.Max(3); err != nil {
		return nil, err
	}
	state, err := p.String(0)
	if err != nil {
		return nil, err
	}
	group, err := p.Int(1)
	if err != nil {
		return nil, err
	}
	addr, err := p.String(2)
	if err != nil {
		return nil, err
	}
	if err := h.d.SetState(group, addr, state); err != nil {
		if errors.Is(err, dispatch.ErrBadState) {
			return nil, &Error{Code: CodeFault, Message: msgUnknownState, Data: err.Error()}
		}
		return nil, &Error{Code: CodeFault, Message: msgStateFailed, Data: err.Error()}
	}
	return okState, nil
}

// add: dispatcher.add group uri [flags [priority [attrs]]]
func (h *dispatcherRPC) add(ctx context.Context, p Params) (any, error) {
	if err := p.Max(5); err != nil {
		return nil, err
	}
	group, err := p.Int(0)
	if err != nil {
		return nil, err
	}
	uri, err := p.String(1)
	if err != nil {
		return nil, err
	}
	flags, err := p.OptInt(2, 0)
	if err != nil {
		return nil, err
	}
	if flags < 0 || flags > int(dispatch.FlagsMask) {
		return nil, paramError(2, "flags %d: want 0..%d", flags, dispatch.FlagsMask)
	}
	prio, err := p.OptInt(3, 0)
	if err != nil {
		return nil, err
	}
	attrs, err := p.OptString(4, "")
	if err != nil {
		return nil, err
	}
	e := dispatch.Entry{SetID: group, URI: uri, Flags: dispatch.Flags(flags), Priority: prio, Attrs: attrs, Source: "rpc dispatcher.add"}
	if err := h.d.Add(ctx, e); err != nil {
		return nil, &Error{Code: CodeFault, Message: msgAddFailed, Data: err.Error()}
	}
	return okAdded, nil
}

// remove: dispatcher.remove group uri
func (h *dispatcherRPC) remove(_ context.Context, p Params) (any, error) {
	if err := p.Max(2); err != nil {
		return nil, err
	}
	group, err := p.Int(0)
	if err != nil {
		return nil, err
	}
	uri, err := p.String(1)
	if err != nil {
		return nil, err
	}
	if err := h.d.Remove(group, uri); err != nil {
		return nil, &Error{Code: CodeFault, Message: msgRemoveFailed, Data: err.Error()}
	}
	return okRemoved, nil
}

// hash: dispatcher.hash nslots v1 [v2]
func (h *dispatcherRPC) hash(_ context.Context, p Params) (any, error) {
	if err := p.Max(3); err != nil {
		return nil, err
	}
	nslots, err := p.Int(0)
	if err != nil {
		return nil, err
	}
	v1, err := p.String(1)
	if err != nil {
		return nil, err
	}
	v2, err := p.OptString(2, "")
	if err != nil {
		return nil, err
	}
	sum := dispatch.Hash(v1, v2)
	res := HashResult{HashID: int32(sum)}
	if nslots > 0 {
		res.Slot = uint32(uint64(sum) % uint64(nslots))
	}
	return res, nil
}

// pingActive: dispatcher.ping_active [0|1]
func (h *dispatcherRPC) pingActive(_ context.Context, p Params) (any, error) {
	if err := p.Max(1); err != nil {
		return nil, err
	}
	if p.Len() == 0 {
		return PingState{OldPingState: boolInt(h.d.PingActive())}, nil
	}
	state, err := p.Int(0)
	if err != nil {
		return nil, err
	}
	if state != 0 && state != 1 {
		return nil, paramError(0, "state %d: want 0 (off) or 1 (on)", state)
	}
	old := h.d.SetPingActive(state == 1)
	return PingState{NewPingState: &state, OldPingState: boolInt(old)}, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
