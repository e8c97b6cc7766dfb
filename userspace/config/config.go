package config

import (
	"io/fs"
	"net/netip"
	"strconv"
	"time"

	"github.com/sipedge/sipedge/userspace/dispatch"
)

// Config is one loaded and validated sipedge.yaml.
type Config struct {
	// File is the name the config was loaded from, as given to Load or
	// LoadFS; errors about the file start with it.
	File       string
	Listeners  []Listener `key:"listeners"`
	Rules      []Rule     `key:"rules"`
	Dispatcher Dispatcher `key:"dispatcher"`
	Failover   Failover   `key:"failover"`
	UDP        UDP        `key:"udp"`
	Control    Control    `key:"control"`
	Log        Log        `key:"log"`
	XDP        XDP        `key:"xdp"`
	Events     Events     `key:"events"`
	Keepalive  Keepalive  `key:"keepalive"`
	Dialogs    Dialogs    `key:"dialogs"`

	// fsys is the file system the config came from (nil: the OS); dir is the
	// config's directory in it. ReadDispatcherList resolves ListFile there.
	fsys fs.FS
	dir  string
	// lines maps a key path ("rules[0].set") to the line of its value.
	lines map[string]int
	// bad holds the key paths whose values did not decode: Validate skips
	// them, so a typo gives one error, not two.
	bad map[string]bool
}

// Listener is a local socket that receives SIP and the address written in
// our Via and Record-Route (docs/forwarding-contract.md: ADV).
type Listener struct {
	Name string
	// Proto is the transport, lower case; only "udp" for now.
	Proto string
	Addr  netip.AddrPort
	// Advertise is host:port written instead of Addr in Via and
	// Record-Route; empty when not configured.
	Advertise string
	// Line is where the listener starts in the config file.
	Line int
}

// ADV returns what the forwarding contract calls ADV: Advertise when set,
// else the listener's IP:PORT (IPv6 bracketed).
func (l Listener) ADV() string {
	if l.Advertise != "" {
		return l.Advertise
	}
	return l.Addr.String()
}

// Rule says how messages that arrive on a listener are dispatched:
// Kamailio's ds_select_dst(Set, Algorithm, Limit) plus our options.
type Rule struct {
	Listener    string
	Set         int
	Algorithm   int
	Limit       int
	RecordRoute bool
	Mode        string
	Line        int
}

// Rule modes.
const (
	ModeStateless = "stateless"
	ModeFailover  = "failover"
)

// Dispatcher holds Kamailio's dispatcher modparams that sipedge honours,
// under the same names.
type Dispatcher struct {
	// ListFile is the dispatcher.list path as written in the config;
	// relative paths are relative to the config file's directory.
	ListFile          string        `key:"list_file"`
	Flags             int           `key:"flags"`
	UseDefault        bool          `key:"use_default"`
	HashPVar          string        `key:"hash_pvar"`
	NoDestinationCode int           `key:"no_destination_code"`
	ReloadDelta       time.Duration `key:"reload_delta"`
	PingInterval      time.Duration `key:"ds_ping_interval"`
	// PingTimeout is the deadline of one probe (no Kamailio twin: there
	// tm's fr_timer decides); 0 means min(PingInterval, 5 s).
	PingTimeout       time.Duration `key:"ds_ping_timeout"`
	PingMethod        string        `key:"ds_ping_method"`
	PingFrom          string        `key:"ds_ping_from"`
	ProbingThreshold  int           `key:"ds_probing_threshold"`
	InactiveThreshold int           `key:"ds_inactive_threshold"`
	PingReplyCodes    string        `key:"ds_ping_reply_codes"`
	ProbingMode       int           `key:"ds_probing_mode"`
	// PingLatencyStats is ds_ping_latency_stats: probe results keep each
	// destination's latency statistics, shown by dispatcher.list.
	PingLatencyStats bool `key:"ds_ping_latency_stats"`
	// LatencyEstimatorAlpha is ds_latency_estimator_alpha, per mille: the
	// weight of the old estimate in the latency EWMA.
	LatencyEstimatorAlpha int `key:"ds_latency_estimator_alpha"`
	// HashFallback is ds_hash_fallback (no Kamailio twin): "next" keeps
	// Kamailio's walk to the next up destination when a hash pick is down,
	// "spread" spreads the down destination's calls over every up one
	// (dispatch.HashFallback).
	HashFallback string `key:"ds_hash_fallback"`
	// HashSize is ds_hash_size: above 0 it turns call load (algorithm
	// 10) on, with a Call-ID table presized for 2^HashSize calls (at most
	// 2^20; it grows past that).
	HashSize int `key:"ds_hash_size"`
	// HashExpire is ds_hash_expire: a call's load is dropped this long
	// after its INVITE, unless it ended before.
	HashExpire time.Duration `key:"ds_hash_expire"`
	// HashInitExpire is ds_hash_initexpire: an unanswered call's load is
	// dropped this long after its INVITE.
	HashInitExpire time.Duration `key:"ds_hash_initexpire"`
	// HashCheckInterval is ds_hash_check_interval: how often expired calls
	// are dropped and the loads audited against the table.
	HashCheckInterval time.Duration `key:"ds_hash_check_interval"`
}

// MaxHashSize is the largest ds_hash_size.
const MaxHashSize = 30

// CallLoad reports whether a rule uses algorithm 10 (call load).
func (c *Config) CallLoad() bool {
	for _, r := range c.Rules {
		if r.Algorithm == int(dispatch.AlgCallLoad) {
			return true
		}
	}
	return false
}

// CallLoadConfig is the call-load table's configuration.
func (d Dispatcher) CallLoadConfig() dispatch.CallLoadConfig {
	return dispatch.CallLoadConfig{Size: d.HashSize, Expire: d.HashExpire, InitExpire: d.HashInitExpire, CheckInterval: d.HashCheckInterval}
}

// Dispatcher.Flags bits (Kamailio's "flags" modparam).
const (
	DispatcherFlagHashUserOnly = 1 // hash the URI user only (algs 1-3)
	DispatcherFlagFailover     = 2 // failover support; informational, Rule.Mode decides
	dispatcherFlagsMask        = DispatcherFlagHashUserOnly | DispatcherFlagFailover
)

// Defaults and bounds of the slow path's limits (docs/config.md).
const (
	// MinPingTimeout is the shortest ds_ping_timeout other than 0.
	MinPingTimeout         = 10 * time.Millisecond
	DefaultMaxTransactions = 32768
	MaxMaxTransactions     = 1 << 20
	// The byte budget of the failover transactions: at least a few
	// 64 kB INVITEs, at most 16 GiB.
	DefaultMaxTransactionBytes = 64 << 20
	MinMaxTransactionBytes     = 1 << 20
	MaxMaxTransactionBytes     = 16 << 30
	DefaultReceiveBuffer       = 8 << 20
	MinReceiveBuffer           = 64 << 10
	MaxReceiveBuffer           = 1 << 30
)

// Failover configures failover-mode rules.
type Failover struct {
	// Timeout is how long an INVITE branch may go without a final reply
	// before the next destination is tried.
	Timeout time.Duration `key:"timeout"`
	// MaxTransactions caps the failover transactions in progress; an
	// INVITE beyond it is answered 503 with Retry-After.
	MaxTransactions int `key:"max_transactions"`
	// MaxTransactionBytes caps the bytes of SIP messages the failover
	// transactions hold together; an INVITE that would go beyond it is
	// answered 503 with Retry-After.
	MaxTransactionBytes int `key:"max_transaction_bytes"`
}

// UDP configures the listener sockets.
type UDP struct {
	// ReceiveBuffer is the SO_RCVBUF asked for each listener socket, in
	// bytes.
	ReceiveBuffer int `key:"receive_buffer"`
}

// Control configures the JSON-RPC endpoints.
type Control struct {
	// Socket is the unix socket path (created mode 0600); empty: none.
	Socket string `key:"socket"`
	// HTTP is a loopback host:port serving POST /RPC; empty: none.
	HTTP string `key:"http"`
	// HTTPAuth is how HTTP callers authenticate: HTTPAuthToken (a bearer
	// token read from HTTPTokenFile) or HTTPAuthNone, which must be written
	// out: any local user can reach a loopback port.
	HTTPAuth string `key:"http_auth"`
	// HTTPTokenFile is the file holding the token; a relative path is
	// relative to the config file's directory.
	HTTPTokenFile string `key:"http_token_file"`
}

// control.http_auth values.
const (
	HTTPAuthToken = "token"
	HTTPAuthNone  = "none"
)

// Log configures the agent's logger.
type Log struct {
	Level  string `key:"level"`  // debug | info | warn | error
	Format string `key:"format"` // text | json
}

// XDP configures the fast path.
type XDP struct {
	// Interfaces the program attaches to: the client side and the backend
	// side, so that requests and replies both take the fast path. The YAML
	// key "interface" takes one name or a list.
	Interfaces []string `key:"interface"`
	Mode       string   `key:"mode"` // auto | native | generic | off
}

// Events configures the event hook (docs/events.md).
type Events struct {
	// HookCommand is the argv run for each event; empty: no hook. The
	// YAML key takes one word or a list.
	HookCommand []string `key:"hook_command"`
	// HookTimeout bounds one run of the hook.
	HookTimeout time.Duration `key:"hook_timeout"`
	// HookFilter lists event name prefixes the hook runs for; empty:
	// every event.
	HookFilter []string `key:"hook_filter"`
}

// DefaultHookTimeout is events.hook_timeout's default (the events
// package's DefaultHookTimeout: TestDefaultsAgree).
const DefaultHookTimeout = 5 * time.Second

// MaxHookTimeout bounds events.hook_timeout.
const MaxHookTimeout = time.Hour

// Keepalive holds Kamailio's keepalive modparams, under the same names
// (docs/keepalive.md). Every key is live: a reload applies it.
type Keepalive struct {
	// Destinations are monitored from the start (modparam destination,
	// which Kamailio repeats; here a list). A URI without a scheme gets
	// "sip:".
	Destinations []string `key:"destination"`
	// PingInterval is the time between two probes of a destination.
	PingInterval time.Duration `key:"ping_interval"`
	// DeleteCounter: a destination added at run time that fails this many
	// probes in a row is removed; 0 never removes.
	DeleteCounter int `key:"delete_counter"`
	// PingFrom is the From URI of the probes.
	PingFrom string `key:"ping_from"`
}

// Dialogs configures dialog tracking, Kamailio's dlgs module
// (docs/config.md#dialogs): its modparams under the same names, what
// Kamailio's script gives dlgs_init (src, dst, data) and the tag rules
// that stand for its dlgs_tags_add and dlgs_tags_rm calls.
type Dialogs struct {
	// Enabled turns tracking on: both paths report dialog messages.
	// Restart only: the fast path's event switch is a load-time constant.
	Enabled bool `key:"enabled"`
	// InitLifetime bounds a dialog not yet confirmed (INIT, PROGRESS,
	// ANSWERED), from its INVITE.
	InitLifetime time.Duration `key:"init_lifetime"`
	// ActiveLifetime bounds a confirmed dialog, from its 2xx.
	ActiveLifetime time.Duration `key:"active_lifetime"`
	// FinishLifetime is how long a finished dialog (TERMINATED,
	// NOTANSWERED) stays listed.
	FinishLifetime time.Duration `key:"finish_lifetime"`
	// TimerInterval is how often expired dialogs are removed.
	TimerInterval time.Duration `key:"timer_interval"`
	// MaxRecords caps the dialogs held.
	MaxRecords int `key:"max_records"`
	// Src, Dst and Data are the templates (package pvar) of each dialog's
	// fields, expanded over its INVITE.
	Src  string `key:"src"`
	Dst  string `key:"dst"`
	Data string `key:"data"`
	// Tags are the tag rules, applied in order to each INVITE.
	Tags []TagRule `key:"tags"`
	// Limits cap the live dialogs per source address, per set or per tag
	// (docs/dialogs.md#limits); they need Enabled.
	Limits []LimitRule `key:"limits"`
}

// LimitRule caps the live dialogs (INIT to CONFIRMED) of one kind: per
// source address within Source, of Set, or carrying Tag; exactly one of
// the three is given. A dialog-creating INVITE that would take a count
// past Max is answered Code Reason (with Retry-After when set) and not
// forwarded.
type LimitRule struct {
	// Source is an IP prefix, or one IP, or "any": each source address in
	// it may hold Max live dialogs, counted separately.
	Source string
	// Set is a destination set: the dialogs dispatched to it together; -1
	// when not given.
	Set int
	// Tag is a tag (text, as the tag rules make it): the dialogs carrying
	// it together.
	Tag string
	// Max is the most live dialogs allowed; 0 is unlimited (the rule is
	// off).
	Max int
	// Code and Reason answer an INVITE over the limit: DefaultLimitCode,
	// and the code's RFC 3261 phrase when Reason is empty.
	Code   int
	Reason string
	// RetryAfter, when more than 0, adds a Retry-After header in whole
	// seconds.
	RetryAfter time.Duration
	// Line is where the rule starts in the config file.
	Line int
}

// DefaultLimitCode answers an INVITE over a dialog limit.
const DefaultLimitCode = 503

// LimitSourceAny is dialogs.limits[].source for every source address.
const LimitSourceAny = "any"

// TagRule adds a tag to, or removes it from, the dialog of an INVITE that
// matches every condition given; a rule without conditions matches every
// INVITE.
type TagRule struct {
	// Tag is a template (package pvar): "$si" tags a dialog with its
	// source IP. A tag that expands to nothing is not applied.
	Tag string
	// Action is TagAdd or TagRemove.
	Action string
	// Source is an IP prefix, or one IP, the INVITE must come from; "" any.
	Source string
	// Listener names the listener the INVITE must arrive on; "" any.
	Listener string
	// Set is the destination set the INVITE must be dispatched to; -1 any.
	Set int
	// Header names a header the INVITE must have, whose value matches
	// the regular expression Value when it is set; "" no header condition.
	Header string
	Value  string
	// Line is where the rule starts in the config file.
	Line int
}

// dialogs.tags[].action values.
const (
	TagAdd    = "add"
	TagRemove = "remove"
)

// Defaults of the dialogs section: Kamailio dlgs' modparams.
const (
	DefaultInitLifetime   = 180 * time.Second
	DefaultActiveLifetime = 10800 * time.Second
	DefaultFinishLifetime = 10 * time.Second
	DefaultTimerInterval  = 30 * time.Second
	DefaultMaxRecords     = 1000000
	// MaxMaxRecords bounds dialogs.max_records: 100 million dialogs are
	// tens of GB.
	MaxMaxRecords = 100000000
	// MinTimerInterval bounds dialogs.timer_interval from below: each
	// run walks the records that expire.
	MinTimerInterval = 100 * time.Millisecond
)

// Defaults returns a Config with every default filled in and no listeners
// or rules: Load starts from it.
func Defaults() Config {
	return Config{
		Dispatcher: Dispatcher{
			ListFile:          "dispatcher.list",
			NoDestinationCode: 503,
			ReloadDelta:       5 * time.Second,
			PingMethod:        "OPTIONS",
			PingFrom:          "sip:dispatcher@localhost",
			ProbingThreshold:  1,
			InactiveThreshold: 1,
			// Kamailio 6.0's default (kamailio-behaviour §3.6).
			LatencyEstimatorAlpha: 100,
			HashFallback:          dispatch.FallbackNext.String(),
			// Kamailio's defaults (ds_hash_size 0: call load off).
			HashExpire:        2 * time.Hour,
			HashInitExpire:    2 * time.Hour,
			HashCheckInterval: 30 * time.Second,
		},
		Failover: Failover{Timeout: 5 * time.Second, MaxTransactions: DefaultMaxTransactions, MaxTransactionBytes: DefaultMaxTransactionBytes},
		UDP:      UDP{ReceiveBuffer: DefaultReceiveBuffer},
		Control:  Control{Socket: "/run/sipedge/sipedge.sock", HTTPAuth: HTTPAuthToken},
		Log:      Log{Level: "info", Format: "text"},
		XDP:      XDP{Mode: "off"},
		Events:   Events{HookTimeout: DefaultHookTimeout},
		Keepalive: Keepalive{
			PingInterval:  30 * time.Second,
			DeleteCounter: 5,
			PingFrom:      "sip:keepalive@localhost",
		},
		Dialogs: Dialogs{
			InitLifetime:   DefaultInitLifetime,
			ActiveLifetime: DefaultActiveLifetime,
			FinishLifetime: DefaultFinishLifetime,
			TimerInterval:  DefaultTimerInterval,
			MaxRecords:     DefaultMaxRecords,
			Src:            "$fu",
			Dst:            "$du",
		},
	}
}

// RuleFor returns the rule of the named listener.
func (c *Config) RuleFor(listener string) (Rule, bool) {
	for _, r := range c.Rules {
		if r.Listener == listener {
			return r, true
		}
	}
	return Rule{}, false
}

// Error is one problem in a config or dispatcher.list file.
type Error struct {
	File string
	Line int // 0 when unknown (a Config built in code)
	Msg  string
}

func (e *Error) Error() string {
	switch {
	case e.File == "":
		return e.Msg
	case e.Line <= 0:
		return e.File + ": " + e.Msg
	}
	return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
}
