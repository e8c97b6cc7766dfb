package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Load reads, decodes and validates the config file at p. Errors name p
// and a line: "sipedge.yaml:12: rules[0].algorithm: ...". The file must be
// a regular file of at most MaxConfigSize bytes, read within ReadTimeout.
func Load(p string) (*Config, error) {
	return LoadContext(context.Background(), p)
}

// LoadContext is Load that gives up reading when ctx ends.
func LoadContext(ctx context.Context, p string) (*Config, error) {
	data, err := readFile(ctx, p, MaxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return load(data, p, nil, filepath.Dir(p))
}

// LoadFS is Load on a file system, e.g. the embedded examples.FS. The
// dispatcher list is read from the same file system.
func LoadFS(fsys fs.FS, name string) (*Config, error) {
	data, err := readFS(fsys, name, MaxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return load(data, name, fsys, path.Dir(name))
}

func load(data []byte, file string, fsys fs.FS, dir string) (*Config, error) {
	el := &errList{file: file}
	if !checkText(data, el) {
		return nil, el.err()
	}
	c, ok := decode(data, file, el)
	c.fsys, c.dir = fsys, dir
	if ok {
		c.validate(el)
	}
	if err := el.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// decode strictly decodes data over the defaults: an unknown or repeated
// key, or a value of the wrong type, is an error with its line. ok is false
// when the YAML does not parse: there is nothing to validate then.
func decode(data []byte, file string, el *errList) (_ *Config, ok bool) {
	c := Defaults()
	c.File = file
	c.lines = map[string]int{}
	c.bad = map[string]bool{}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			addYAMLError(el, err)
			return &c, false
		}
		return &c, true // empty file: Validate reports what is missing
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		el.add(extra.Line, "a second YAML document; the config is one document")
	case !errors.Is(err, io.EOF):
		addYAMLError(el, err)
	}
	if len(doc.Content) == 0 {
		return &c, true
	}
	d := &decoder{c: &c, el: el}
	d.top(doc.Content[0])
	return &c, true
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// addYAMLError turns a yaml syntax error into file:line: message.
func addYAMLError(el *errList, err error) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		el.add(line, "%s", m[2])
		return
	}
	el.add(0, "%s", strings.TrimPrefix(msg, "yaml: "))
}

// decoder walks the YAML node tree into a Config.
type decoder struct {
	c  *Config
	el *errList
}

// setter decodes the value v of key path p, whose key is on line.
type setter func(p string, line int, v *yaml.Node)

type field struct {
	key string
	set setter
}

func (d *decoder) top(root *yaml.Node) {
	c := d.c
	dp, fo, ct, lg, xd, dg := &c.Dispatcher, &c.Failover, &c.Control, &c.Log, &c.XDP, &c.Dialogs
	d.mapping(root, "", []field{
		{"listeners", d.listeners},
		{"rules", d.rules},
		{"dispatcher", d.section([]field{
			{"list_file", d.str(&dp.ListFile)},
			{"flags", d.integer(&dp.Flags)},
			{"use_default", d.zeroOne(&dp.UseDefault)},
			{"hash_pvar", d.str(&dp.HashPVar)},
			{"no_destination_code", d.integer(&dp.NoDestinationCode)},
			{"reload_delta", d.duration(&dp.ReloadDelta)},
			{"ds_ping_interval", d.duration(&dp.PingInterval)},
			{"ds_ping_timeout", d.duration(&dp.PingTimeout)},
			{"ds_ping_method", d.str(&dp.PingMethod)},
			{"ds_ping_from", d.str(&dp.PingFrom)},
			{"ds_probing_threshold", d.integer(&dp.ProbingThreshold)},
			{"ds_inactive_threshold", d.integer(&dp.InactiveThreshold)},
			{"ds_ping_reply_codes", d.str(&dp.PingReplyCodes)},
			{"ds_probing_mode", d.integer(&dp.ProbingMode)},
			{"ds_ping_latency_stats", d.zeroOne(&dp.PingLatencyStats)},
			{"ds_latency_estimator_alpha", d.integer(&dp.LatencyEstimatorAlpha)},
			{"ds_hash_fallback", d.str(&dp.HashFallback)},
			{"ds_hash_size", d.integer(&dp.HashSize)},
			{"ds_hash_expire", d.duration(&dp.HashExpire)},
			{"ds_hash_initexpire", d.duration(&dp.HashInitExpire)},
			{"ds_hash_check_interval", d.duration(&dp.HashCheckInterval)},
		})},
		{"failover", d.section([]field{
			{"timeout", d.duration(&fo.Timeout)},
			{"max_transactions", d.integer(&fo.MaxTransactions)},
			{"max_transaction_bytes", d.integer(&fo.MaxTransactionBytes)},
		})},
		{"udp", d.section([]field{
			{"receive_buffer", d.integer(&c.UDP.ReceiveBuffer)},
		})},
		{"control", d.section([]field{
			{"socket", d.str(&ct.Socket)},
			{"http", d.str(&ct.HTTP)},
			{"http_auth", d.str(&ct.HTTPAuth)},
			{"http_token_file", d.str(&ct.HTTPTokenFile)},
		})},
		{"log", d.section([]field{
			{"level", d.str(&lg.Level)},
			{"format", d.str(&lg.Format)},
		})},
		{"xdp", d.section([]field{
			{"interface", d.names(&xd.Interfaces)},
			{"mode", d.str(&xd.Mode)},
		})},
		{"events", d.section([]field{
			{"hook_command", d.names(&c.Events.HookCommand)},
			{"hook_timeout", d.duration(&c.Events.HookTimeout)},
			{"hook_filter", d.names(&c.Events.HookFilter)},
		})},
		{"keepalive", d.section([]field{
			{"destination", d.names(&c.Keepalive.Destinations)},
			{"ping_interval", d.duration(&c.Keepalive.PingInterval)},
			{"delete_counter", d.integer(&c.Keepalive.DeleteCounter)},
			{"ping_from", d.str(&c.Keepalive.PingFrom)},
		})},
		{"dialogs", d.section([]field{
			{"enabled", d.boolean(&dg.Enabled)},
			{"init_lifetime", d.duration(&dg.InitLifetime)},
			{"active_lifetime", d.duration(&dg.ActiveLifetime)},
			{"finish_lifetime", d.duration(&dg.FinishLifetime)},
			{"timer_interval", d.duration(&dg.TimerInterval)},
			{"max_records", d.integer(&dg.MaxRecords)},
			{"src", d.str(&dg.Src)},
			{"dst", d.str(&dg.Dst)},
			{"data", d.str(&dg.Data)},
			{"tags", d.tagRules},
			{"limits", d.limitRules},
		})},
	})
}

func (d *decoder) tagRules(p string, line int, v *yaml.Node) {
	d.sequence(p, line, v, func(ip string, n *yaml.Node) {
		r := TagRule{Line: n.Line, Action: TagAdd, Set: -1}
		d.mapping(n, ip, []field{
			{"tag", d.str(&r.Tag)},
			{"action", d.str(&r.Action)},
			{"source", d.str(&r.Source)},
			{"listener", d.str(&r.Listener)},
			{"set", d.integer(&r.Set)},
			{"header", d.str(&r.Header)},
			{"value", d.str(&r.Value)},
		})
		d.c.Dialogs.Tags = append(d.c.Dialogs.Tags, r)
	})
}

func (d *decoder) limitRules(p string, line int, v *yaml.Node) {
	d.sequence(p, line, v, func(ip string, n *yaml.Node) {
		r := LimitRule{Line: n.Line, Set: -1, Code: DefaultLimitCode}
		d.mapping(n, ip, []field{
			{"source", d.str(&r.Source)},
			{"set", d.integer(&r.Set)},
			{"tag", d.str(&r.Tag)},
			{"max", d.integer(&r.Max)},
			{"code", d.integer(&r.Code)},
			{"reason", d.str(&r.Reason)},
			{"retry_after", d.duration(&r.RetryAfter)},
		})
		d.c.Dialogs.Limits = append(d.c.Dialogs.Limits, r)
	})
}

func (d *decoder) listeners(p string, line int, v *yaml.Node) {
	d.sequence(p, line, v, func(ip string, n *yaml.Node) {
		l := Listener{Line: n.Line}
		var addr string
		d.mapping(n, ip, []field{
			{"name", d.str(&l.Name)},
			{"address", d.str(&addr)},
			{"advertise", d.str(&l.Advertise)},
		})
		if addr != "" {
			proto, ap, err := parseListenAddress(addr)
			if err != nil {
				d.fail(ip+".address", d.c.lines[ip+".address"], "%v", err)
			}
			l.Proto, l.Addr = proto, ap
		}
		d.c.Listeners = append(d.c.Listeners, l)
	})
}

func (d *decoder) rules(p string, line int, v *yaml.Node) {
	d.sequence(p, line, v, func(ip string, n *yaml.Node) {
		r := Rule{Line: n.Line, Mode: ModeStateless}
		d.mapping(n, ip, []field{
			{"listener", d.str(&r.Listener)},
			{"set", d.integer(&r.Set)},
			{"algorithm", d.integer(&r.Algorithm)},
			{"limit", d.integer(&r.Limit)},
			{"record_route", d.boolean(&r.RecordRoute)},
			{"mode", d.str(&r.Mode)},
		})
		d.c.Rules = append(d.c.Rules, r)
	})
}

// fail records an error about key path p and marks p as not decoded.
func (d *decoder) fail(p string, line int, format string, args ...any) {
	d.c.bad[p] = true
	d.el.add(line, "%s: %s", p, fmt.Sprintf(format, args...))
}

func join(p, key string) string {
	if p == "" {
		return key
	}
	return p + "." + key
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// describe names a node's value for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	if isNull(n) {
		return "nothing"
	}
	return strconv.Quote(n.Value)
}

// mapping decodes the mapping n at key path p through fields. A null node
// is an empty mapping; keys must be known and appear once.
func (d *decoder) mapping(n *yaml.Node, p string, fields []field) {
	n = deref(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		what := p
		if what == "" {
			what = "config"
		}
		d.el.add(n.Line, "%s: want a mapping, got %s", what, describe(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		key := k.Value
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
			d.el.add(k.Line, "%s: merge keys and complex keys are not supported", orConfig(p))
			continue
		}
		kp := join(p, key)
		if first, ok := seen[key]; ok {
			d.el.add(k.Line, "%s: repeated key (first at line %d)", kp, first)
			continue
		}
		seen[key] = k.Line
		f := lookup(fields, key)
		if f == nil {
			names := make([]string, len(fields))
			for j, f := range fields {
				names[j] = f.key
			}
			d.el.add(k.Line, "%s: unknown key %q%s", orConfig(p), key, suggest(key, names))
			continue
		}
		if isNull(v) {
			continue // key without a value: keep the default
		}
		d.c.lines[kp] = k.Line
		f(kp, k.Line, v)
	}
}

func orConfig(p string) string {
	if p == "" {
		return "config"
	}
	return p
}

func lookup(fields []field, key string) setter {
	for _, f := range fields {
		if f.key == key {
			return f.set
		}
	}
	return nil
}

func (d *decoder) section(fields []field) setter {
	return func(p string, _ int, v *yaml.Node) { d.mapping(v, p, fields) }
}

// sequence calls item for every element of the list v at key path p.
func (d *decoder) sequence(p string, line int, v *yaml.Node, item func(ip string, n *yaml.Node)) {
	if v.Kind != yaml.SequenceNode {
		d.fail(p, line, "want a list, got %s", describe(v))
		return
	}
	for i, n := range v.Content {
		ip := fmt.Sprintf("%s[%d]", p, i)
		n = deref(n)
		d.c.lines[ip] = n.Line
		if n.Kind != yaml.MappingNode {
			d.fail(ip, n.Line, "want a mapping, got %s", describe(n))
			continue
		}
		item(ip, n)
	}
}

func (d *decoder) scalar(p string, line int, v *yaml.Node) bool {
	if v.Kind != yaml.ScalarNode {
		d.fail(p, line, "want a single value, got %s", describe(v))
		return false
	}
	return true
}

func (d *decoder) str(dst *string) setter {
	return func(p string, line int, v *yaml.Node) {
		if d.scalar(p, line, v) {
			*dst = v.Value
		}
	}
}

// names decodes one name or a list of names.
func (d *decoder) names(dst *[]string) setter {
	return func(p string, line int, v *yaml.Node) {
		switch v.Kind {
		case yaml.ScalarNode:
			if v.Value != "" { // interface: "" means none, like an absent key
				*dst = []string{v.Value}
			}
		case yaml.SequenceNode:
			for _, n := range v.Content {
				n = deref(n)
				if n.Kind != yaml.ScalarNode {
					d.fail(p, n.Line, "want a name, got %s", describe(n))
					continue
				}
				*dst = append(*dst, n.Value)
			}
		default:
			d.fail(p, line, "want a name or a list of names, got %s", describe(v))
		}
	}
}

func (d *decoder) integer(dst *int) setter {
	return func(p string, line int, v *yaml.Node) {
		if !d.scalar(p, line, v) {
			return
		}
		var i int
		if v.ShortTag() != "!!int" || v.Decode(&i) != nil {
			d.fail(p, line, "want an integer, got %s", describe(v))
			return
		}
		*dst = i
	}
}

func (d *decoder) boolean(dst *bool) setter {
	return func(p string, line int, v *yaml.Node) {
		if !d.scalar(p, line, v) {
			return
		}
		var b bool
		if v.ShortTag() != "!!bool" || v.Decode(&b) != nil {
			d.fail(p, line, "want true or false, got %s", describe(v))
			return
		}
		*dst = b
	}
}

// zeroOne decodes Kamailio's 0|1 switches; true and false work too.
func (d *decoder) zeroOne(dst *bool) setter {
	return func(p string, line int, v *yaml.Node) {
		if !d.scalar(p, line, v) {
			return
		}
		switch {
		case v.ShortTag() == "!!bool" && v.Decode(dst) == nil:
		case v.ShortTag() == "!!int" && v.Value == "0":
			*dst = false
		case v.ShortTag() == "!!int" && v.Value == "1":
			*dst = true
		default:
			d.fail(p, line, "want 0 or 1, got %s", describe(v))
		}
	}
}

// duration decodes Go durations ("5s", "1m30s") and whole seconds (30, as
// Kamailio modparams give them).
func (d *decoder) duration(dst *time.Duration) setter {
	return func(p string, line int, v *yaml.Node) {
		if !d.scalar(p, line, v) {
			return
		}
		dur, err := parseDuration(v.Value)
		if err != nil {
			d.fail(p, line, "%v", err)
			return
		}
		*dst = dur
	}
}

func parseDuration(s string) (time.Duration, error) {
	if s != "" && strings.Trim(s, "0123456789") == "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n > int64(1<<63-1)/int64(time.Second) {
			return 0, fmt.Errorf("duration %q is too long", s)
		}
		return time.Duration(n) * time.Second, nil
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want a duration such as 5s or 1m30s, or whole seconds, got %q", s)
	}
	if dur < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return dur, nil
}
