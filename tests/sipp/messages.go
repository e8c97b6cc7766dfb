package sipp

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Direction says whether SIPp received or sent a message.
type Direction int

// Directions.
const (
	Received Direction = iota
	Sent
)

func (d Direction) String() string {
	if d == Sent {
		return "sent"
	}
	return "received"
}

// Message is one SIP message from a SIPp message log.
type Message struct {
	Time      time.Time
	Dir       Direction
	Transport string // "UDP", "TCP", ...
	Raw       string // the message as SIPp logged it (CRLF line ends)

	StartLine string
	Method    string // request method; empty for a response
	Status    int    // response status code; 0 for a request
	// Headers in message order, names in their long form ("v" → "Via")
	// as written otherwise; folded lines are joined with one space.
	Headers []Header
	Body    string
}

// Header is one header line.
type Header struct{ Name, Value string }

// IsRequest reports whether m is a request.
func (m Message) IsRequest() bool { return m.Method != "" }

// Get returns the value of the first header line named name (case
// insensitive, compact forms accepted), or "".
func (m Message) Get(name string) string {
	name = longName(name)
	for _, h := range m.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// Values returns the values of every header line named name, in order.
func (m Message) Values(name string) []string {
	name = longName(name)
	var out []string
	for _, h := range m.Headers {
		if strings.EqualFold(h.Name, name) {
			out = append(out, h.Value)
		}
	}
	return out
}

// CallID is the Call-ID, trimmed.
func (m Message) CallID() string { return strings.TrimSpace(m.Get("Call-ID")) }

// CSeq returns the CSeq number and method.
func (m Message) CSeq() (int, string) {
	f := strings.Fields(m.Get("CSeq"))
	if len(f) != 2 {
		return 0, ""
	}
	n, _ := strconv.Atoi(f[0])
	return n, f[1]
}

// TopVia is the first Via value (the first value of the first Via line).
func (m Message) TopVia() string {
	v := m.Get("Via")
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i]
	}
	return strings.TrimSpace(v)
}

// Branch is the top Via's branch parameter.
func (m Message) Branch() string { return param(m.TopVia(), "branch") }

func (m Message) String() string {
	return fmt.Sprintf("%s %s %q Call-ID %q", m.Time.Format("15:04:05.000000"), m.Dir, m.StartLine, m.CallID())
}

// param returns the value of parameter name in a header value
// ("SIP/2.0/UDP h:p;branch=x;rport").
func param(v, name string) string {
	for _, p := range strings.Split(v, ";")[1:] {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, name) {
			return val
		}
	}
	return ""
}

var compact = map[string]string{
	"i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
	"c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To", "v": "Via",
}

func longName(n string) string {
	if l, ok := compact[strings.ToLower(n)]; ok {
		return l
	}
	return n
}

// Messages is a message log, in log order.
type Messages []Message

// Filter returns the messages keep accepts.
func (ms Messages) Filter(keep func(Message) bool) Messages {
	var out Messages
	for _, m := range ms {
		if keep(m) {
			out = append(out, m)
		}
	}
	return out
}

// Requests returns the requests with method (any method when empty) in
// direction dir.
func (ms Messages) Requests(dir Direction, method string) Messages {
	return ms.Filter(func(m Message) bool {
		return m.Dir == dir && m.IsRequest() && (method == "" || m.Method == method)
	})
}

// Responses returns the responses with status (any when 0) in direction dir.
func (ms Messages) Responses(dir Direction, status int) Messages {
	return ms.Filter(func(m Message) bool {
		return m.Dir == dir && !m.IsRequest() && (status == 0 || m.Status == status)
	})
}

// CallIDs counts the messages per Call-ID.
func (ms Messages) CallIDs() map[string]int {
	out := make(map[string]int)
	for _, m := range ms {
		out[m.CallID()]++
	}
	return out
}

// ReadMessages parses the message log at path (-trace_msg). A file that
// does not exist yet is an empty log.
func ReadMessages(path string) (Messages, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read message log: %w", err)
	}
	msgs, err := ParseMessages(data)
	if err != nil {
		return msgs, fmt.Errorf("message log %s: %w", path, err)
	}
	return msgs, nil
}

// sepPrefix starts every block of a SIPp message log:
//
//	----------------------------------------------- 2026-11-22 07:53:51.167629
//	UDP message received [514] bytes :
//
//	INVITE sip:... (514 bytes)
//
// Sent messages say "UDP message sent (313 bytes):". The byte count is
// used when the text after it is consistent (only blank lines up to the
// next block); otherwise the message is the text up to the next block.
var (
	sepPrefix = []byte("-----------------------------------------------")
	descRE    = regexp.MustCompile(`^(\w+) message (received|sent) (?:\[(\d+)\] bytes|\((\d+) bytes\))\s*:?\s*$`)
)

// ParseMessages parses a SIPp message log. Blocks it does not recognise
// (other SIPp log lines) are skipped; a recognised block whose message does
// not parse is an error, returned with the messages parsed so far.
func ParseMessages(data []byte) (Messages, error) {
	var out Messages
	var bad []string
	starts := blockStarts(data)
	for i, start := range starts {
		end := len(data)
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		block := data[start:end]
		header, rest, _ := bytes.Cut(block, []byte("\n"))
		desc, rest, _ := bytes.Cut(rest, []byte("\n"))
		m := descRE.FindSubmatch(bytes.TrimRight(desc, "\r"))
		if m == nil {
			continue
		}
		var msg Message
		ts := strings.TrimSpace(string(header[len(sepPrefix):]))
		if t, err := time.ParseInLocation("2006-01-02 15:04:05.000000", ts, time.Local); err == nil {
			msg.Time = t
		}
		msg.Transport = string(m[1])
		if string(m[2]) == "sent" {
			msg.Dir = Sent
		}
		size, _ := strconv.Atoi(string(m[3]) + string(m[4]))
		// One empty line separates the description from the message.
		if len(rest) > 0 && rest[0] == '\n' {
			rest = rest[1:]
		} else if bytes.HasPrefix(rest, []byte("\r\n")) {
			rest = rest[2:]
		}
		var raw []byte
		if size > 0 && size <= len(rest) && len(bytes.TrimSpace(rest[size:])) == 0 {
			raw = rest[:size]
		} else {
			raw = bytes.TrimRight(rest, "\r\n")
		}
		if err := parseSIP(raw, &msg); err != nil {
			bad = append(bad, fmt.Sprintf("block at byte %d: %v", start, err))
			continue
		}
		out = append(out, msg)
	}
	if len(bad) > 0 {
		return out, fmt.Errorf("%d unparsable message(s): %s", len(bad), strings.Join(bad, "; "))
	}
	return out, nil
}

// blockStarts returns the offsets of the lines that start a block.
func blockStarts(data []byte) []int {
	var starts []int
	for off := 0; off < len(data); {
		if bytes.HasPrefix(data[off:], sepPrefix) {
			starts = append(starts, off)
		}
		nl := bytes.IndexByte(data[off:], '\n')
		if nl < 0 {
			break
		}
		off += nl + 1
	}
	return starts
}

// ParseSIP parses one raw SIP message (as read from a socket).
func ParseSIP(raw []byte) (Message, error) {
	var m Message
	err := parseSIP(raw, &m)
	return m, err
}

// parseSIP fills m from one raw SIP message.
func parseSIP(raw []byte, m *Message) error {
	m.Raw = string(raw)
	text := strings.ReplaceAll(m.Raw, "\r\n", "\n")
	head, body, _ := strings.Cut(text, "\n\n")
	m.Body = body
	lines := strings.Split(head, "\n")
	m.StartLine = strings.TrimSpace(lines[0])
	f := strings.Fields(m.StartLine)
	switch {
	case len(f) >= 2 && strings.HasPrefix(f[0], "SIP/"):
		code, err := strconv.Atoi(f[1])
		if err != nil {
			return fmt.Errorf("bad status line %q", m.StartLine)
		}
		m.Status = code
	case len(f) == 3 && strings.HasPrefix(f[2], "SIP/"):
		m.Method = f[0]
	default:
		return fmt.Errorf("bad start line %q", m.StartLine)
	}
	for _, l := range lines[1:] {
		if l == "" {
			continue
		}
		if (l[0] == ' ' || l[0] == '\t') && len(m.Headers) > 0 {
			h := &m.Headers[len(m.Headers)-1]
			h.Value += " " + strings.TrimSpace(l)
			continue
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			return fmt.Errorf("bad header line %q", l)
		}
		m.Headers = append(m.Headers, Header{Name: longName(strings.TrimSpace(name)), Value: strings.TrimSpace(value)})
	}
	if m.CallID() == "" {
		return fmt.Errorf("%q: no Call-ID", m.StartLine)
	}
	return nil
}
