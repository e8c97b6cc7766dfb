package config

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
)

// liveKeys are the keys a reload (SIGHUP) applies to the running agent.
// Every other key needs a restart (docs/config.md, "Reloading").
var liveKeys = []string{
	"dispatcher.list_file",
	"dispatcher.flags",
	"dispatcher.use_default",
	"dispatcher.ds_hash_fallback",
	"dispatcher.reload_delta",
	"dispatcher.ds_hash_expire",
	"dispatcher.ds_hash_initexpire",
	"dispatcher.ds_hash_check_interval",
	"log.level",
	"events.hook_command",
	"events.hook_timeout",
	"events.hook_filter",
	"keepalive.destination",
	"keepalive.ping_interval",
	"keepalive.delete_counter",
	"keepalive.ping_from",
	"dialogs.init_lifetime",
	"dialogs.active_lifetime",
	"dialogs.finish_lifetime",
	"dialogs.timer_interval",
	"dialogs.max_records",
	"dialogs.src",
	"dialogs.dst",
	"dialogs.data",
	"dialogs.tags",
	"dialogs.limits",
}

// LiveKeys returns the keys a reload applies, sorted.
func LiveKeys() []string { return slices.Sorted(slices.Values(liveKeys)) }

// Reloaded returns the config a reload runs with: c (the running config)
// with next's values of the live keys, and the keys whose value next
// changes but only a restart can apply; those keep c's value. Every key is
// named by the `key` tags of Config's fields.
func (c *Config) Reloaded(next *Config) (*Config, []string) {
	merged := *c
	var restart []string
	mv, nv := reflect.ValueOf(&merged).Elem(), reflect.ValueOf(next).Elem()
	t := mv.Type()
	for i := range t.NumField() {
		top := t.Field(i).Tag.Get("key")
		if top == "" {
			continue
		}
		mf, nf := mv.Field(i), nv.Field(i)
		if mf.Kind() != reflect.Struct {
			if !reflect.DeepEqual(withoutLines(mf), withoutLines(nf)) {
				restart = append(restart, top)
			}
			continue
		}
		for j := range mf.NumField() {
			key := top + "." + mf.Type().Field(j).Tag.Get("key")
			switch {
			case slices.Contains(liveKeys, key):
				mf.Field(j).Set(nf.Field(j))
			case !reflect.DeepEqual(mf.Field(j).Interface(), nf.Field(j).Interface()):
				restart = append(restart, key)
			}
		}
	}
	return &merged, restart
}

// withoutLines returns a list of listeners or rules with their Line fields
// zeroed, so that moving an entry within the file is no change.
func withoutLines(v reflect.Value) any {
	if v.Kind() != reflect.Slice {
		return v.Interface()
	}
	out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
	reflect.Copy(out, v)
	for i := range out.Len() {
		if f := out.Index(i).FieldByName("Line"); f.IsValid() {
			f.SetInt(0)
		}
	}
	return out.Interface()
}

// MaxTokenSize is the largest control.http_token_file accepted, in bytes.
const MaxTokenSize = 4096

// minTokenLen is the shortest token accepted.
const minTokenLen = 16

// ReadHTTPToken reads the token of control.http_token_file: the file's
// text without surrounding blanks and line ends, at least 16 bytes of
// printable ASCII.
func (c *Config) ReadHTTPToken(ctx context.Context) (string, error) {
	p := c.Control.HTTPTokenFile
	if !filepath.IsAbs(p) && c.fsys == nil {
		p = filepath.Join(c.dir, p)
	}
	var (
		data []byte
		err  error
	)
	if c.fsys != nil {
		data, err = readFS(c.fsys, p, MaxTokenSize)
	} else {
		data, err = readFile(ctx, p, MaxTokenSize)
	}
	if err != nil {
		return "", fmt.Errorf("read control.http_token_file: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if len(tok) < minTokenLen {
		return "", fmt.Errorf("control.http_token_file %s: the token is %d bytes; at least %d are needed", p, len(tok), minTokenLen)
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] <= ' ' || tok[i] >= 0x7f {
			return "", fmt.Errorf("control.http_token_file %s: the token holds byte 0x%02x; use printable ASCII without blanks", p, tok[i])
		}
	}
	return tok, nil
}
