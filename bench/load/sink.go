package load

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// SinkConfig configures a Sink.
type SinkConfig struct {
	// Answer replies 200 OK to every request but ACK, to the address it
	// came from (the proxy, whose Via is on top), so replies flow back.
	Answer bool
	// Keep keeps a copy of the first Keep datagrams (Kept) for checks.
	Keep int
	// Batch is the number of datagrams per recvmmsg; default 64.
	Batch int
	// Pin pins the receiving thread to CPU.
	Pin bool
	CPU int
}

// SinkStats are a sink's counters.
type SinkStats struct {
	At       time.Time
	Received uint64
	Bytes    uint64
	Answered uint64
	Errors   uint64 // failed recvmmsg/sendmmsg calls
}

// Sub is s - o.
func (s SinkStats) Sub(o SinkStats) SinkStats {
	return SinkStats{At: s.At, Received: s.Received - o.Received, Bytes: s.Bytes - o.Bytes,
		Answered: s.Answered - o.Answered, Errors: s.Errors - o.Errors}
}

// Sink receives on a socket until Stop.
type Sink struct {
	s    *Socket
	cfg  SinkConfig
	stop atomic.Bool
	done chan struct{}

	recvd, bytes, answered, errs atomic.Uint64

	mu   sync.Mutex
	kept [][]byte
}

// StartSink receives on s (bound where the proxy sends: a backend's
// address) in a goroutine of its own.
func StartSink(s *Socket, cfg SinkConfig) *Sink {
	if cfg.Batch <= 0 {
		cfg.Batch = 64
	}
	k := &Sink{s: s, cfg: cfg, done: make(chan struct{})}
	go k.run()
	return k
}

// Stats reads the counters.
func (k *Sink) Stats() SinkStats {
	return SinkStats{At: time.Now(), Received: k.recvd.Load(), Bytes: k.bytes.Load(), Answered: k.answered.Load(), Errors: k.errs.Load()}
}

// Kept returns the datagrams kept so far (SinkConfig.Keep).
func (k *Sink) Kept() [][]byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([][]byte(nil), k.kept...)
}

// Stop stops receiving and returns the final counters; the socket stays
// open.
func (k *Sink) Stop() SinkStats {
	k.stop.Store(true)
	<-k.done
	return k.Stats()
}

func (k *Sink) run() {
	defer close(k.done)
	cpu := -1
	if k.cfg.Pin {
		cpu = k.cfg.CPU
	}
	unpin, _ := pinThread(cpu)
	defer unpin()
	in := newBatch(k.cfg.Batch, 4096, true)
	var out *batch
	if k.cfg.Answer {
		out = newBatch(k.cfg.Batch, 4096, true)
	}
	for !k.stop.Load() {
		in.resetForRecv()
		n, err := recvmmsg(k.s.fd, in.hdrs)
		if err != nil {
			if !temporary(err) {
				k.errs.Add(1)
				time.Sleep(10 * time.Millisecond)
			}
			continue
		}
		k.recvd.Add(uint64(n))
		var nb uint64
		for i := range n {
			nb += uint64(in.hdrs[i].Len)
		}
		k.bytes.Add(nb)
		if k.cfg.Keep > 0 {
			k.keep(in, n)
		}
		if out == nil {
			continue
		}
		m := 0
		for i := range n {
			l := Answer(out.bufs[m], in.bufs[i][:in.hdrs[i].Len])
			if l == 0 {
				continue
			}
			out.setLen(m, l)
			out.names[m] = in.names[i]
			out.hdrs[m].Hdr.Namelen = in.hdrs[i].Hdr.Namelen
			m++
		}
		if m == 0 {
			continue
		}
		sent, err := sendmmsg(k.s.fd, out.hdrs[:m])
		if err != nil {
			k.errs.Add(1)
		}
		k.answered.Add(uint64(sent))
	}
}

func (k *Sink) keep(b *batch, n int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i := 0; i < n && len(k.kept) < k.cfg.Keep; i++ {
		k.kept = append(k.kept, bytes.Clone(b.bufs[i][:b.hdrs[i].Len]))
	}
}

// Answer writes into dst a 200 OK to the request req (RFC 3261 §8.2.6:
// every Via in order, From, To with a tag added when it has none, Call-ID,
// CSeq, no body) and returns its length; 0 when req is a response, an ACK,
// not parseable, or the answer does not fit.
func Answer(dst, req []byte) int {
	eol := bytes.Index(req, crlf)
	if eol < 0 || bytes.HasPrefix(req, []byte("SIP/")) || bytes.HasPrefix(req, []byte("ACK ")) {
		return 0
	}
	w := writer{buf: dst}
	w.str("SIP/2.0 200 OK\r\n")
	var from, to, callID, cseq []byte
	rest := req[eol+2:]
	for len(rest) > 0 {
		line := rest
		if i := bytes.Index(rest, crlf); i >= 0 {
			line, rest = rest[:i], rest[i+2:]
		} else {
			rest = nil
		}
		if len(line) == 0 {
			break // end of headers
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return 0
		}
		switch name := string(bytes.ToLower(bytes.TrimSpace(line[:colon]))); name {
		case "via", "v":
			w.bytes(line)
			w.str("\r\n")
		case "from", "f":
			from = line
		case "to", "t":
			to = line
		case "call-id", "i":
			callID = line
		case "cseq":
			cseq = line
		}
	}
	if from == nil || to == nil || callID == nil || cseq == nil {
		return 0
	}
	w.bytes(from)
	w.str("\r\n")
	w.bytes(to)
	if !bytes.Contains(bytes.ToLower(to), []byte(";tag=")) {
		w.str(";tag=bench-sink")
	}
	w.str("\r\n")
	w.bytes(callID)
	w.str("\r\n")
	w.bytes(cseq)
	w.str("\r\nContent-Length: 0\r\n\r\n")
	if w.overflow {
		return 0
	}
	return w.n
}

var crlf = []byte("\r\n")

type writer struct {
	buf      []byte
	n        int
	overflow bool
}

func (w *writer) bytes(b []byte) {
	if w.n+len(b) > len(w.buf) {
		w.overflow = true
		return
	}
	w.n += copy(w.buf[w.n:], b)
}

func (w *writer) str(s string) {
	if w.n+len(s) > len(w.buf) {
		w.overflow = true
		return
	}
	w.n += copy(w.buf[w.n:], s)
}

// String describes the counters.
func (s SinkStats) String() string {
	return fmt.Sprintf("received %d (%d bytes), answered %d, errors %d", s.Received, s.Bytes, s.Answered, s.Errors)
}
