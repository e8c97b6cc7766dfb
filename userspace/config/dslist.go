package config

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sipedge/sipedge/userspace/dispatch"
)

// maxListLine is the longest dispatcher.list line accepted, in bytes
// without the line end. Kamailio splits lines at 1024 bytes; we do not.
const maxListLine = 64 << 10

// ListPath returns where ReadDispatcherList reads from: ListFile resolved
// against the config file's directory (in the config's file system).
func (c *Config) ListPath() string {
	p := c.Dispatcher.ListFile
	if c.fsys != nil {
		if path.IsAbs(p) {
			return p
		}
		return path.Join(c.dir, p)
	}
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}

// ReadDispatcherList reads and parses the config's dispatcher.list. Errors
// and Entry.Source name the list by its base name: "dispatcher.list:7". The
// list must be a regular file of at most MaxListSize bytes, read within
// ReadTimeout.
func (c *Config) ReadDispatcherList() ([]dispatch.Entry, error) {
	return c.ReadDispatcherListContext(context.Background())
}

// ReadDispatcherListContext is ReadDispatcherList that gives up reading
// when ctx ends.
func (c *Config) ReadDispatcherListContext(ctx context.Context) ([]dispatch.Entry, error) {
	p := c.ListPath()
	var (
		data []byte
		err  error
	)
	switch {
	case c.fsys == nil:
		data, err = readFile(ctx, p, MaxListSize)
	case path.IsAbs(p):
		err = fmt.Errorf("open %s: an absolute list_file cannot be read from the file system the config came from", p)
	default:
		data, err = readFS(c.fsys, p, MaxListSize)
	}
	if err != nil {
		return nil, fmt.Errorf("read dispatcher list: %w", err)
	}
	return ParseDispatcherList(bytes.NewReader(data), p)
}

// ParseDispatcherList parses a Kamailio dispatcher.list:
//
//	setid uri [flags [priority [attrs]]]
//
// with the differences from Kamailio listed in docs/config.md. Errors and
// Entry.Source use the base name of name and the line number. It returns
// every error found, joined, and no entries when there is any.
func ParseDispatcherList(r io.Reader, name string) ([]dispatch.Entry, error) {
	base := filepath.Base(name)
	if name == "" {
		base = "dispatcher.list"
	}
	el := &errList{file: base}
	br := bufio.NewReader(r)
	var entries []dispatch.Entry
	buf := make([]byte, 0, 256)
	for n := 1; ; n++ {
		line, size, err := readListLine(br, buf[:0])
		buf = line
		if size > 0 {
			switch {
			case size > maxListLine:
				el.add(n, "line is %d bytes long; the limit is %d", size, maxListLine)
			default:
				e, ok, msg := parseListLine(string(line))
				switch {
				case msg != "":
					el.add(n, "%s", msg)
				case ok:
					e.Source = base + ":" + strconv.Itoa(n)
					entries = append(entries, e)
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", base, err)
		}
	}
	if err := el.err(); err != nil {
		return nil, err
	}
	return entries, nil
}

// readListLine reads one line into buf, keeping at most maxListLine+1
// bytes of it; size is its full length without the final "\n".
func readListLine(br *bufio.Reader, buf []byte) (line []byte, size int, err error) {
	for {
		frag, err := br.ReadSlice('\n')
		size += len(frag)
		if len(buf) <= maxListLine {
			buf = append(buf, frag[:min(len(frag), maxListLine+1-len(buf))]...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if len(frag) > 0 && frag[len(frag)-1] == '\n' {
			size--
			buf = trimLineEnd(buf)
		}
		return buf, size, err
	}
}

func trimLineEnd(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	return b
}

// isListSpace reports the bytes that separate dispatcher.list fields, as in
// Kamailio: space, tab, CR and LF.
func isListSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }

// listScanner walks the fields of one dispatcher.list line.
type listScanner struct {
	s string
	i int
}

func (sc *listScanner) skipSpace() {
	for sc.i < len(sc.s) && isListSpace(sc.s[sc.i]) {
		sc.i++
	}
}

// atEnd skips blanks and reports whether the line ends or a comment starts.
func (sc *listScanner) atEnd() bool {
	sc.skipSpace()
	return sc.i >= len(sc.s) || sc.s[sc.i] == '#'
}

// field returns the next field, up to a blank, or also up to '#' when
// hashEnds is set.
func (sc *listScanner) field(hashEnds bool) string {
	start := sc.i
	for sc.i < len(sc.s) && !isListSpace(sc.s[sc.i]) && (!hashEnds || sc.s[sc.i] != '#') {
		sc.i++
	}
	return sc.s[start:sc.i]
}

// parseListLine parses one line. ok is false for blank and comment lines;
// msg says what is wrong. An entry passes dispatch.Entry.Check, the rules
// dispatcher.add applies too.
func parseListLine(line string) (e dispatch.Entry, ok bool, msg string) {
	e, ok, msg = parseListFields(line)
	if ok {
		if err := e.Check(); err != nil {
			return e, false, err.Error()
		}
	}
	return e, ok, msg
}

// parseListFields splits one line into an entry's fields.
func parseListFields(line string) (e dispatch.Entry, ok bool, msg string) {
	sc := &listScanner{s: line}
	if sc.atEnd() {
		return e, false, ""
	}
	if strings.IndexByte(line, 0) >= 0 {
		return e, false, "line holds a NUL byte"
	}
	start := sc.i
	set := sc.field(true)
	if !isDigits(set) {
		sc.i = start
		return e, false, fmt.Sprintf("set id must be a number, got %q", sc.field(false))
	}
	id, err := strconv.ParseInt(set, 10, 64)
	if err != nil || id > math.MaxInt32 {
		return e, false, fmt.Sprintf("set id %s is out of range 0-%d", set, math.MaxInt32)
	}
	e.SetID = int(id)
	if sc.atEnd() {
		return e, false, fmt.Sprintf("set %d has no destination URI", e.SetID)
	}
	e.URI = sc.field(true)
	if sc.atEnd() {
		return e, true, ""
	}
	flags, msg := parseListFlags(sc.field(true))
	if msg != "" {
		return e, false, msg
	}
	e.Flags = flags
	if sc.atEnd() {
		return e, true, ""
	}
	prio := sc.field(true)
	if !isDigits(prio) {
		return e, false, fmt.Sprintf("priority must be a decimal number (digits only), got %q", prio)
	}
	p, err := strconv.ParseInt(prio, 10, 64)
	if err != nil || p > math.MaxInt32 {
		return e, false, fmt.Sprintf("priority %s is out of range 0-%d", prio, math.MaxInt32)
	}
	e.Priority = int(p)
	if sc.atEnd() {
		return e, true, ""
	}
	e.Attrs = sc.field(false) // '#' does not end attrs (as in Kamailio)
	if !sc.atEnd() {
		rest := strings.TrimRightFunc(sc.s[sc.i:], func(r rune) bool { return r < 0x80 && isListSpace(byte(r)) })
		return e, false, fmt.Sprintf("unexpected text %q after attrs %q (attrs must not contain blanks; start a comment with #)", rest, e.Attrs)
	}
	return e, true, ""
}

// flagLetters maps the letters Kamailio's script and RPC functions take to
// flag values, for the hint when a list file uses them.
var flagLetters = map[byte]dispatch.Flags{
	'a': 0, 'i': dispatch.FlagInactive, 't': dispatch.FlagTrying,
	'd': dispatch.FlagDisabled, 'p': dispatch.FlagProbing,
}

// parseListFlags parses decimal or 0x/0X hex flags within dispatch.FlagsMask.
func parseListFlags(tok string) (dispatch.Flags, string) {
	var (
		v   uint64
		err error
	)
	switch {
	case len(tok) > 2 && tok[0] == '0' && (tok[1] == 'x' || tok[1] == 'X') && isHex(tok[2:]):
		v, err = strconv.ParseUint(tok[2:], 16, 64)
	case isDigits(tok):
		v, err = strconv.ParseUint(tok, 10, 64)
	default:
		msg := fmt.Sprintf("flags must be a number (decimal or 0x hex), got %q", tok)
		var f dispatch.Flags
		for i := 0; i < len(tok); i++ {
			l, ok := flagLetters[tok[i]|0x20]
			if !ok {
				return 0, msg
			}
			f |= l
		}
		return 0, fmt.Sprintf("%s; letters are for RPC and scripts, write %d here", msg, f)
	}
	if err != nil || v&^uint64(dispatch.FlagsMask) != 0 {
		return 0, fmt.Sprintf("flags %s set bits outside mask %d (1 inactive, 2 trying, 4 disabled, 8 probing, 16 no DNS, 32 no ping)", tok, dispatch.FlagsMask)
	}
	return dispatch.Flags(v), ""
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i] | 0x20; (b < '0' || b > '9') && (b < 'a' || b > 'f') {
			return false
		}
	}
	return s != ""
}
