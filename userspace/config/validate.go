package config

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sipedge/sipedge/userspace/dialogattr"
	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/pvar"
	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// Validate checks c as a whole and returns every problem found, joined, each
// as FILE:LINE: key: message. Load calls it; call it again after changing a
// Config in code.
func (c *Config) Validate() error {
	el := &errList{file: c.File}
	c.validate(el)
	return el.err()
}

// line returns the line of key path p, else of fallback, else 0.
func (c *Config) line(p string, fallback int) int {
	if l, ok := c.lines[p]; ok {
		return l
	}
	return fallback
}

// given reports whether key path p was written in the file. A Config built
// in code has no lines and is taken as complete.
func (c *Config) given(p string) bool {
	if c.lines == nil {
		return true
	}
	_, ok := c.lines[p]
	return ok
}

// validator adds errors about key paths of one Config.
type validator struct {
	c  *Config
	el *errList
}

// check adds an error about key path p unless p failed to decode already.
func (v *validator) check(p string, fallback int, format string, args ...any) {
	if v.c.bad[p] {
		return
	}
	v.el.add(v.c.line(p, fallback), "%s: %s", p, fmt.Sprintf(format, args...))
}

func (c *Config) validate(el *errList) {
	v := &validator{c: c, el: el}
	v.listeners()
	v.rules()
	v.dispatcher()
	v.rest()
	v.keepalive()
	v.dialogs()
	v.limits()
}

func (v *validator) listeners() {
	c := v.c
	if len(c.Listeners) == 0 {
		if !c.bad["listeners"] {
			v.check("listeners", 1, "at least one listener is required")
		}
		return
	}
	type sock struct {
		proto string
		addr  netip.AddrPort
	}
	names := map[string]int{}
	addrs := map[sock]int{}
	for i, l := range c.Listeners {
		ip := fmt.Sprintf("listeners[%d]", i)
		switch {
		case l.Name == "":
			v.check(ip+".name", l.Line, "required")
		case !validName(l.Name):
			v.check(ip+".name", l.Line, "%q: use letters, digits, '_', '.' and '-' (at most 64, starting with a letter or digit)", l.Name)
		default:
			if first, dup := names[l.Name]; dup {
				v.check(ip+".name", l.Line, "duplicate listener name %q (first at line %d)", l.Name, first)
			} else {
				names[l.Name] = l.Line
			}
		}
		ap := ip + ".address"
		switch {
		case c.bad[ap]:
		case !l.Addr.IsValid():
			v.check(ap, l.Line, "required, e.g. udp:127.0.0.1:5060")
		default:
			if l.Proto != "udp" {
				v.check(ap, l.Line, "proto %q is not supported yet (only udp)", l.Proto)
			}
			if l.Addr.Addr().IsUnspecified() && l.Advertise == "" {
				v.check(ap, l.Line, "%s is a wildcard address: listen on one IP, or set advertise", l.Addr)
			}
			if first, dup := addrs[sock{l.Proto, l.Addr}]; dup {
				v.check(ap, l.Line, "duplicate listener address %s (first at line %d)", l.Addr, first)
			} else {
				addrs[sock{l.Proto, l.Addr}] = v.c.line(ap, l.Line)
			}
		}
		if l.Advertise != "" {
			if err := checkHostPort(l.Advertise); err != nil {
				v.check(ip+".advertise", l.Line, "%v", err)
			}
		}
	}
}

func (v *validator) rules() {
	c := v.c
	ruled := map[string]int{}
	for i, r := range c.Rules {
		ip := fmt.Sprintf("rules[%d]", i)
		lp := ip + ".listener"
		switch {
		case r.Listener == "":
			v.check(lp, r.Line, "required")
		case !c.hasListener(r.Listener) && !c.badUnder("listeners"):
			names := make([]string, len(c.Listeners))
			for j, l := range c.Listeners {
				names[j] = l.Name
			}
			v.check(lp, r.Line, "no listener named %q%s", r.Listener, suggest(r.Listener, names))
		default:
			if first, dup := ruled[r.Listener]; dup {
				v.check(lp, r.Line, "listener %q already has a rule (line %d)", r.Listener, first)
			} else {
				ruled[r.Listener] = r.Line
			}
		}
		switch sp := ip + ".set"; {
		case !c.given(sp):
			v.check(sp, r.Line, "required: the dispatcher set id")
		case r.Set < 0 || r.Set > math.MaxInt32:
			v.check(sp, r.Line, "set id %d is out of range 0-%d", r.Set, math.MaxInt32)
		}
		if msg := checkAlgorithm(r.Algorithm); msg != "" {
			v.check(ip+".algorithm", r.Line, "%s", msg)
		} else if r.Algorithm == 7 && c.Dispatcher.HashPVar == "" && !c.bad["dispatcher.hash_pvar"] {
			v.check(ip+".algorithm", r.Line, "algorithm 7 hashes dispatcher.hash_pvar, which is not set")
		} else if r.Algorithm == 10 && c.Dispatcher.HashSize <= 0 && !c.bad["dispatcher.ds_hash_size"] {
			v.check(ip+".algorithm", r.Line, "algorithm 10 keeps its calls in a table that dispatcher.ds_hash_size turns on (e.g. 10); it is 0")
		}
		if r.Limit < 0 {
			v.check(ip+".limit", r.Line, "must be 0 (no limit) or more, got %d", r.Limit)
		}
		if r.Mode != ModeStateless && r.Mode != ModeFailover {
			v.check(ip+".mode", r.Line, "want stateless or failover, got %q", r.Mode)
		}
	}
	for i, l := range c.Listeners {
		if validName(l.Name) && !c.ruleNamed(l.Name) && !c.badUnder("rules") {
			v.check(fmt.Sprintf("listeners[%d]", i), l.Line, "listener %q has no rule", l.Name)
		}
	}
}

// badUnder reports whether any key path under p failed to decode.
func (c *Config) badUnder(p string) bool {
	for k := range c.bad {
		if k == p || strings.HasPrefix(k, p+".") || strings.HasPrefix(k, p+"[") {
			return true
		}
	}
	return false
}

func (c *Config) hasListener(name string) bool {
	for _, l := range c.Listeners {
		if l.Name == name {
			return true
		}
	}
	return false
}

func (c *Config) ruleNamed(listener string) bool {
	_, ok := c.RuleFor(listener)
	return ok
}

// checkAlgorithm returns what is wrong with a Kamailio algorithm number.
func checkAlgorithm(alg int) string {
	switch alg {
	case 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14:
		return ""
	case 12:
		return "algorithm 12 (parallel forking) is not supported yet"
	case 15:
		return "algorithm 15 (priority and weight) is not supported yet"
	case 64:
		return "algorithm 64 (overload control) is not supported yet"
	}
	return fmt.Sprintf("unknown algorithm %d (supported: 0-11, 13, 14)", alg)
}

func (v *validator) dispatcher() {
	d := v.c.Dispatcher
	const p = "dispatcher."
	if d.ListFile == "" {
		v.check(p+"list_file", 0, "must not be empty")
	}
	if d.Flags&^dispatcherFlagsMask != 0 || d.Flags < 0 {
		v.check(p+"flags", 0, "%d has unknown bits (1 = hash the user only, 2 = failover)", d.Flags)
	}
	if d.HashPVar != "" {
		if err := checkHashPVar(d.HashPVar); err != nil {
			v.check(p+"hash_pvar", 0, "%v", err)
		}
	}
	if d.NoDestinationCode != 503 && d.NoDestinationCode != 404 {
		v.check(p+"no_destination_code", 0, "want 503 or 404, got %d", d.NoDestinationCode)
	}
	if d.ReloadDelta < 0 {
		v.check(p+"reload_delta", 0, "must not be negative")
	}
	if d.PingInterval < 0 {
		v.check(p+"ds_ping_interval", 0, "must not be negative")
	}
	switch {
	case d.PingTimeout < 0:
		v.check(p+"ds_ping_timeout", 0, "must not be negative")
	case d.PingTimeout > 0 && d.PingTimeout < MinPingTimeout:
		v.check(p+"ds_ping_timeout", 0, "%v is below %v (the probe scheduler's tick is 5 ms)", d.PingTimeout, MinPingTimeout)
	case d.PingTimeout > d.PingInterval && d.PingInterval > 0:
		v.check(p+"ds_ping_timeout", 0, "%v is longer than ds_ping_interval %v: a probe must end before the next one starts", d.PingTimeout, d.PingInterval)
	}
	switch {
	case d.PingMethod == "":
		v.check(p+"ds_ping_method", 0, "must not be empty")
	case !sipmsg.IsToken(d.PingMethod):
		v.check(p+"ds_ping_method", 0, "%q is not a SIP method name", d.PingMethod)
	case d.PingMethod == "ACK" || d.PingMethod == "CANCEL":
		v.check(p+"ds_ping_method", 0, "%s gets no reply of its own: it cannot probe", d.PingMethod)
	case d.PingMethod == "INVITE":
		v.check(p+"ds_ping_method", 0, "INVITE would need an ACK and a dialog: probes are non-INVITE requests (OPTIONS, INFO, ...)")
	}
	if err := checkSIPURI(d.PingFrom); err != nil {
		v.check(p+"ds_ping_from", 0, "%v", err)
	}
	if d.ProbingThreshold < 1 {
		v.check(p+"ds_probing_threshold", 0, "must be 1 or more, got %d", d.ProbingThreshold)
	}
	if d.InactiveThreshold < 1 {
		v.check(p+"ds_inactive_threshold", 0, "must be 1 or more, got %d", d.InactiveThreshold)
	}
	if _, err := ParsePingReplyCodes(d.PingReplyCodes); err != nil {
		v.check(p+"ds_ping_reply_codes", 0, "%v", err)
	}
	if d.ProbingMode < 0 || d.ProbingMode > 3 {
		v.check(p+"ds_probing_mode", 0, "want 0, 1, 2 or 3, got %d", d.ProbingMode)
	}
	if d.LatencyEstimatorAlpha < 0 || d.LatencyEstimatorAlpha > 1000 {
		v.check(p+"ds_latency_estimator_alpha", 0, "want 0 to 1000 (per mille), got %d", d.LatencyEstimatorAlpha)
	}
	if _, err := dispatch.ParseHashFallback(d.HashFallback); err != nil {
		v.check(p+"ds_hash_fallback", 0, "%v", err)
	}
	if d.HashSize < 0 || d.HashSize > MaxHashSize {
		v.check(p+"ds_hash_size", 0, "want 0 (call load off) to %d, got %d", MaxHashSize, d.HashSize)
	}
	for _, k := range []struct {
		key string
		val time.Duration
	}{{"ds_hash_expire", d.HashExpire}, {"ds_hash_initexpire", d.HashInitExpire}} {
		if k.val < time.Second {
			v.check(p+k.key, 0, "%v is below 1s (calls expire in whole seconds)", k.val)
		}
	}
	if d.HashCheckInterval < MinHashCheckInterval {
		v.check(p+"ds_hash_check_interval", 0, "%v is below %v", d.HashCheckInterval, MinHashCheckInterval)
	}
}

// MinHashCheckInterval is the shortest ds_hash_check_interval: each check
// walks the whole Call-ID table.
const MinHashCheckInterval = 100 * time.Millisecond

func (v *validator) rest() {
	c := v.c
	if c.Failover.Timeout <= 0 {
		v.check("failover.timeout", 0, "must be more than 0")
	}
	if n := c.Failover.MaxTransactions; n < 1 || n > MaxMaxTransactions {
		v.check("failover.max_transactions", 0, "want 1 to %d, got %d", MaxMaxTransactions, n)
	}
	if n := c.Failover.MaxTransactionBytes; n < MinMaxTransactionBytes || n > MaxMaxTransactionBytes {
		v.check("failover.max_transaction_bytes", 0, "want %d to %d bytes, got %d", MinMaxTransactionBytes, MaxMaxTransactionBytes, n)
	}
	if n := c.UDP.ReceiveBuffer; n < MinReceiveBuffer || n > MaxReceiveBuffer {
		v.check("udp.receive_buffer", 0, "want %d to %d bytes, got %d", MinReceiveBuffer, MaxReceiveBuffer, n)
	}
	// sun_path holds 108 bytes with the terminating NUL.
	if n := len(c.Control.Socket); n > 107 {
		v.check("control.socket", 0, "path is %d bytes long; a unix socket path holds at most 107", n)
	}
	if c.Control.HTTP != "" {
		if err := checkLoopback(c.Control.HTTP); err != nil {
			v.check("control.http", 0, "%v", err)
		}
	}
	switch c.Control.HTTPAuth {
	case HTTPAuthToken:
		if c.Control.HTTP != "" && c.Control.HTTPTokenFile == "" {
			v.check("control.http_token_file", v.c.line("control.http", 0),
				"required with control.http: callers send the token in the file as a bearer token (or write control.http_auth: none to let any local user in)")
		}
	case HTTPAuthNone:
	default:
		v.check("control.http_auth", 0, "want token or none, got %q", c.Control.HTTPAuth)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.check("log.level", 0, "want debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		v.check("log.format", 0, "want text or json, got %q", c.Log.Format)
	}
	if t := c.Events.HookTimeout; t <= 0 || t > MaxHookTimeout {
		v.check("events.hook_timeout", 0, "want more than 0 and at most %v, got %v", MaxHookTimeout, t)
	}
	for i, w := range c.Events.HookCommand {
		if w == "" && i == 0 {
			v.check("events.hook_command", 0, "the command (first word) is empty")
		}
		if strings.ContainsRune(w, 0) {
			v.check("events.hook_command", 0, "word %d holds a NUL byte", i+1)
		}
	}
	for _, f := range c.Events.HookFilter {
		if f == "" {
			v.check("events.hook_filter", 0, "an empty prefix matches every event: leave the key out instead")
		}
	}
	switch c.XDP.Mode {
	case "off":
	case "auto", "native", "generic":
		if len(c.XDP.Interfaces) == 0 {
			v.check("xdp.interface", v.c.line("xdp.mode", 0), "required when xdp.mode is %s", c.XDP.Mode)
		}
	default:
		v.check("xdp.mode", 0, "want auto, native, generic or off, got %q", c.XDP.Mode)
	}
	seen := map[string]bool{}
	for _, name := range c.XDP.Interfaces {
		switch {
		case !validIfName(name):
			v.check("xdp.interface", 0, "%q is not a network interface name", name)
		case seen[name]:
			v.check("xdp.interface", 0, "%q is given twice", name)
		}
		seen[name] = true
	}
}

// parseListenAddress parses proto:IP:PORT, IPv6 as proto:[IP]:PORT.
func parseListenAddress(s string) (string, netip.AddrPort, error) {
	const want = "want proto:IP:PORT such as udp:127.0.0.1:5060"
	proto, rest, ok := strings.Cut(s, ":")
	if !ok || proto == "" || strings.Trim(strings.ToLower(proto), "abcdefghijklmnopqrstuvwxyz") != "" {
		return "", netip.AddrPort{}, fmt.Errorf("%q: %s", s, want)
	}
	proto = strings.ToLower(proto)
	ap, err := netip.ParseAddrPort(rest)
	if err != nil {
		if a, aerr := netip.ParseAddr(strings.Trim(rest, "[]")); aerr == nil {
			if a.Is6() && !strings.HasPrefix(rest, "[") {
				return "", netip.AddrPort{}, fmt.Errorf("%q: write IPv6 in brackets with a port, e.g. udp:[::1]:5060", s)
			}
			return "", netip.AddrPort{}, fmt.Errorf("%q has no port: %s", s, want)
		}
		return "", netip.AddrPort{}, fmt.Errorf("%q: %q is not IP:PORT (an IP literal, IPv6 in brackets)", s, rest)
	}
	if ap.Addr().Zone() != "" {
		return "", netip.AddrPort{}, fmt.Errorf("%q: IPv6 zones are not supported", s)
	}
	if ap.Port() == 0 {
		return "", netip.AddrPort{}, fmt.Errorf("%q: port 0 is not a port to listen on", s)
	}
	return proto, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// checkHostPort checks an advertised host:port: an IP literal (IPv6 in
// brackets) or a DNS name, and a port.
func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			return fmt.Errorf("%q has no port: want host:port such as 203.0.113.10:5060", s)
		}
		return fmt.Errorf("%q: want host:port such as 203.0.113.10:5060 or [2001:db8::1]:5060", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strings.Trim(port, "0123456789") != "" {
		return fmt.Errorf("%q: port %q is not 1-65535", s, port)
	}
	if strings.HasPrefix(s, "[") {
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || a.Zone() != "" {
			return fmt.Errorf("%q: %q in brackets is not an IPv6 address", s, host)
		}
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if !validHostName(host) {
		return fmt.Errorf("%q: %q is neither an IP address nor a host name", s, host)
	}
	return nil
}

// checkLoopback checks that s is host:port on a loopback address.
func checkLoopback(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q: want host:port such as 127.0.0.1:8080", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strings.Trim(port, "0123456789") != "" {
		return fmt.Errorf("%q: port %q is not 1-65535", s, port)
	}
	if host == "localhost" {
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil && a.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q is not a loopback address: JSON-RPC over HTTP listens on 127.0.0.1, ::1 or localhost only", s)
}

// checkSIPURI checks that s looks like a sip: or sips: URI.
func checkSIPURI(s string) error {
	lower := strings.ToLower(s)
	rest, ok := strings.CutPrefix(lower, "sip:")
	if !ok {
		rest, ok = strings.CutPrefix(lower, "sips:")
	}
	switch {
	case !ok:
		return fmt.Errorf("%q is not a sip: or sips: URI", s)
	case rest == "":
		return fmt.Errorf("%q has nothing after the scheme", s)
	case strings.ContainsAny(s, " \t\r\n<>\""):
		return fmt.Errorf("%q: write the bare URI, without spaces, <> or quotes", s)
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 || !isAlnum(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; !isAlnum(b) && b != '_' && b != '.' && b != '-' {
			return false
		}
	}
	return true
}

func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	numeric := true
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			b := label[i]
			if !isAlnum(b) && b != '-' {
				return false
			}
			if b < '0' || b > '9' {
				numeric = false
			}
		}
	}
	return !numeric // "203.0.113" is a mistyped IP, not a name
}

// validIfName follows the kernel's dev_valid_name.
func validIfName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	return !strings.ContainsAny(s, "/: \t\r\n")
}

func isAlnum(b byte) bool {
	return b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}

// CheckSets returns an error for every rule, and every dialogs tag or
// limit rule naming a set, whose set has, by has, no destinations: the agent calls it
// once it has built the sets from the dispatcher list, so the error can
// point at the rule's line.
func (c *Config) CheckSets(has func(set int) bool) error {
	el := &errList{file: c.File}
	for i, r := range c.Rules {
		if !has(r.Set) {
			p := fmt.Sprintf("rules[%d].set", i)
			el.add(c.line(p, r.Line), "%s: set %d is not in %s", p, r.Set, c.Dispatcher.ListFile)
		}
	}
	for i, r := range c.Dialogs.Tags {
		if r.Set >= 0 && !has(r.Set) {
			p := fmt.Sprintf("dialogs.tags[%d].set", i)
			el.add(c.line(p, r.Line), "%s: set %d is not in %s", p, r.Set, c.Dispatcher.ListFile)
		}
	}
	for i, r := range c.Dialogs.Limits {
		if r.Set >= 0 && !has(r.Set) {
			p := fmt.Sprintf("dialogs.limits[%d].set", i)
			el.add(c.line(p, r.Line), "%s: set %d is not in %s", p, r.Set, c.Dispatcher.ListFile)
		}
	}
	return el.err()
}

// CheckCallLoadSets returns an error for every destination without a duid,
// or with a duid another destination of its set has, in a set a rule
// dispatches with algorithm 10: its load is kept by duid (Kamailio fails
// the select of such a destination).
func (c *Config) CheckCallLoadSets(snap *dispatch.Snapshot) error {
	el := &errList{file: c.File}
	for i, r := range c.Rules {
		set := snap.Set(r.Set)
		if r.Algorithm != int(dispatch.AlgCallLoad) || set == nil {
			continue
		}
		p := fmt.Sprintf("rules[%d].algorithm", i)
		seen := map[string]string{}
		for _, d := range set.Dests {
			switch first, dup := seen[d.Attrs.DUID]; {
			case d.Attrs.DUID == "":
				el.add(c.line(p, r.Line), "%s: algorithm 10 needs a duid on every destination of set %d; %s has none", p, r.Set, d.URI)
			case dup:
				el.add(c.line(p, r.Line), "%s: algorithm 10 keeps loads by duid; %s and %s of set %d both have duid %q", p, first, d.URI, r.Set, d.Attrs.DUID)
			default:
				seen[d.Attrs.DUID] = d.URI
			}
		}
	}
	return el.err()
}

func (v *validator) dialogs() {
	c := v.c
	d := c.Dialogs
	const p = "dialogs."
	for _, lt := range []struct {
		key string
		val time.Duration
	}{{"init_lifetime", d.InitLifetime}, {"active_lifetime", d.ActiveLifetime}, {"finish_lifetime", d.FinishLifetime}} {
		if lt.val <= 0 {
			v.check(p+lt.key, 0, "must be more than 0")
		}
	}
	if d.TimerInterval < MinTimerInterval {
		v.check(p+"timer_interval", 0, "%v is below %v", d.TimerInterval, MinTimerInterval)
	}
	if n := d.MaxRecords; n < 1 || n > MaxMaxRecords {
		v.check(p+"max_records", 0, "want 1 to %d, got %d", MaxMaxRecords, n)
	}
	for _, t := range []struct{ key, text string }{{"src", d.Src}, {"dst", d.Dst}, {"data", d.Data}} {
		if _, err := pvar.Parse(t.text); err != nil {
			v.check(p+t.key, 0, "%v", err)
		}
	}
	for i, r := range d.Tags {
		ip := fmt.Sprintf("dialogs.tags[%d]", i)
		if r.Tag == "" {
			v.check(ip+".tag", r.Line, "required: the tag to add or remove (text, or a template such as $si)")
		} else if _, err := pvar.Parse(r.Tag); err != nil {
			v.check(ip+".tag", r.Line, "%v", err)
		}
		if r.Action != TagAdd && r.Action != TagRemove {
			v.check(ip+".action", r.Line, "want add or remove, got %q", r.Action)
		}
		if r.Source != "" {
			if _, err := dialogattr.ParseSource(r.Source); err != nil {
				v.check(ip+".source", r.Line, "%v", err)
			}
		}
		if r.Listener != "" && !c.hasListener(r.Listener) && !c.badUnder("listeners") {
			names := make([]string, len(c.Listeners))
			for j, l := range c.Listeners {
				names[j] = l.Name
			}
			v.check(ip+".listener", r.Line, "no listener named %q%s", r.Listener, suggest(r.Listener, names))
		}
		if c.given(ip+".set") && (r.Set < 0 || r.Set > math.MaxInt32) {
			v.check(ip+".set", r.Line, "set id %d is out of range 0-%d", r.Set, math.MaxInt32)
		}
		switch {
		case r.Header != "":
			if err := dialogattr.CheckHeaderName(r.Header); err != nil {
				v.check(ip+".header", r.Line, "%v", err)
			}
			if r.Value != "" {
				if _, err := regexp.Compile(r.Value); err != nil {
					v.check(ip+".value", r.Line, "%v", err)
				}
			}
		case r.Value != "":
			v.check(ip+".value", r.Line, "needs header: the header whose value it matches")
		}
	}
}

// limits checks dialogs.limits: one kind per rule, the values in range,
// and dialogs.enabled, without which nothing is counted.
func (v *validator) limits() {
	c := v.c
	for i, r := range c.Dialogs.Limits {
		ip := fmt.Sprintf("dialogs.limits[%d]", i)
		if i == 0 && !c.Dialogs.Enabled {
			v.check(ip, r.Line, "limits need dialogs.enabled: true (the live dialogs they cap are counted by dialog tracking)")
		}
		kinds := 0
		if r.Source != "" {
			kinds++
			if r.Source != LimitSourceAny {
				if _, err := dialogattr.ParseSource(r.Source); err != nil {
					v.check(ip+".source", r.Line, "%v (or %s)", err, LimitSourceAny)
				}
			}
		}
		if c.given(ip+".set") || r.Set != -1 {
			kinds++
			if r.Set < 0 || r.Set > math.MaxInt32 {
				v.check(ip+".set", r.Line, "set id %d is out of range 0-%d", r.Set, math.MaxInt32)
			}
		}
		if r.Tag != "" {
			kinds++
			if len(r.Tag) > dialogattr.MaxTagLen {
				v.check(ip+".tag", r.Line, "longer than %d bytes: no tag rule makes such a tag", dialogattr.MaxTagLen)
			}
		}
		if kinds != 1 {
			v.check(ip, r.Line, "want exactly one of source, set or tag (what the limit counts), got %d", kinds)
		}
		if !c.given(ip + ".max") {
			v.check(ip+".max", r.Line, "required: the most live dialogs allowed (0: unlimited)")
		} else if r.Max < 0 {
			v.check(ip+".max", r.Line, "%d is below 0 (0: unlimited)", r.Max)
		}
		if r.Code < 400 || r.Code > 699 {
			v.check(ip+".code", r.Line, "want a final error code 400-699, got %d", r.Code)
		}
		if strings.ContainsAny(r.Reason, "\r\n") {
			v.check(ip+".reason", r.Line, "a reason phrase is one line")
		}
		if r.RetryAfter < 0 || r.RetryAfter%time.Second != 0 {
			v.check(ip+".retry_after", r.Line, "want whole seconds, 0 or more, got %v", r.RetryAfter)
		}
	}
}

// DialogAttrs returns the dialogs section as package dialogattr compiles
// it.
func (d Dialogs) DialogAttrs() dialogattr.Config {
	cfg := dialogattr.Config{Src: d.Src, Dst: d.Dst, Data: d.Data}
	for _, r := range d.Tags {
		cfg.Rules = append(cfg.Rules, dialogattr.Rule{
			Tag: r.Tag, Remove: r.Action == TagRemove, Source: r.Source,
			Listener: r.Listener, Set: r.Set, Header: r.Header, Value: r.Value,
		})
	}
	return cfg
}
