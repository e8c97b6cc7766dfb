package dialog

import (
	"time"
	"unsafe"

	"github.com/sipedge/sipedge/userspace/wordhash"
)

// Observe applies a batch of messages in order, under one hold of the lock.
func (t *Tracker) Observe(ms []Message) {
	if len(ms) == 0 {
		return
	}
	var now int64 // time.Now for messages without a time, read once
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range ms {
		m := &ms[k]
		var ts int64
		if m.Time.IsZero() {
			if now == 0 {
				now = time.Now().UnixNano()
			}
			ts = now
		} else {
			ts = m.Time.UnixNano()
		}
		hash := m.CallIDHash
		if hash == 0 && m.CallID != "" {
			hash = wordhash.CallID([]byte(m.CallID))
		}
		if m.Request && m.Method == Invite {
			t.invite(m, hash, ts)
			continue
		}
		t.update(m, hash, ts)
	}
}

// update applies a message other than an INVITE request to the newest
// record of its Call-ID (kamailio-behaviour §8, "Transitions").
func (t *Tracker) update(m *Message, hash uint64, ts int64) {
	i := t.tab.newest(hash)
	if i == 0 {
		t.stats.Unmatched++
		return
	}
	r := t.tab.at(i)
	to, ok := transition(m, r.state)
	if !ok {
		t.stats.Ignored++
		return
	}
	switch to {
	case Answered:
		r.answer = ts
		if r.text(textToTag) == "" && m.ToTag != "" && len(m.ToTag) < maxToTag {
			t.learnToTag(r, m.ToTag)
		}
	case Terminated, NotAnswered:
		r.finish = ts
	}
	t.setState(i, r, to)
}

// transition is the state a record in state from moves to on m, and
// whether m moves it at all.
func transition(m *Message, from State) (State, bool) {
	if m.Request {
		switch {
		case m.Method == Ack && from == Answered:
			return Confirmed, true
		case m.Method == Cancel && from.setup():
			return NotAnswered, true
		case m.Method == Bye && (from == Answered || from == Confirmed):
			return Terminated, true
		}
		return from, false
	}
	if m.Method != Invite || !from.setup() {
		return from, false
	}
	switch {
	case m.Status >= 100 && m.Status < 200:
		if from == Init {
			return Progress, true
		}
	case m.Status >= 200 && m.Status < 300:
		return Answered, true
	case m.Status >= 300 && m.Status < 700:
		return NotAnswered, true
	}
	return from, false
}

// learnToTag rebuilds the record's arena with the To tag of its 2xx.
func (t *Tracker) learnToTag(r *record, toTag string) {
	texts := r.texts()
	texts[textToTag] = toTag
	// The To tag is under 127 bytes and the other fields fitted before.
	if arena, ends, ok := buildArena(texts, r.tagsText()); ok {
		r.arena, r.ends = arena, ends
	}
}

// invite applies an INVITE request: a new record, unless it retransmits a
// known branch or its Call-ID has a live record (a re-INVITE, a spiral or
// a parallel fork), in which case only its tag changes apply, or it has a
// To tag (an in-dialog INVITE of a dialog not held), which is ignored.
func (t *Tracker) invite(m *Message, hash uint64, ts int64) {
	if hash == 0 || m.FromTag == "" || m.Branch == "" {
		t.stats.Ignored++
		return
	}
	var live uint32
	for i := *t.tab.bucket(hash); i != 0; {
		r := t.tab.at(i)
		if r.hash == hash {
			if r.text(textBranch) == m.Branch {
				t.stats.Ignored++ // a retransmission
				return
			}
			if r.state.live() {
				live = i
			}
		}
		i = r.next
	}
	if live != 0 {
		if !t.retag(t.tab.at(live), m.AddTags, m.RemoveTags) {
			t.stats.Ignored++
		}
		return
	}
	if m.ToTag != "" {
		// A mid-dialog INVITE of no dialog held: a UAS answers it 481
		// (RFC 3261 12.2.2) and creates none, and admission and the
		// fast path's limit check, which let To-tagged INVITEs pass,
		// must not see a count grow from it.
		t.stats.Ignored++
		return
	}
	t.create(m, hash, ts)
}

// create adds a record for an INVITE, shedding under the cap.
func (t *Tracker) create(m *Message, hash uint64, ts int64) {
	var keyBuf [20]byte
	keys := keysText(&keyBuf, m.Set, m.Source)
	texts := [numTexts]string{
		textSrc: m.Src, textDst: m.Dst, textData: m.Data,
		textCallID: m.CallID, textBranch: m.Branch,
		textFromTag: m.FromTag, textToTag: m.ToTag,
		// A view of keyBuf: buildArena copies it.
		textKeys: unsafe.String(&keys[0], len(keys)),
	}
	if len(m.ToTag) >= maxToTag {
		texts[textToTag] = ""
	}
	var tagBuf [64]byte
	tags := tagSection(tagBuf[:0], "", m.AddTags, m.RemoveTags)
	arena, ends, ok := buildArena(&texts, string(tags))
	if !ok {
		t.stats.Ignored++ // fields over 64 KiB
		return
	}
	for t.tab.used >= t.cfg.MaxRecords && t.tab.setupHead != 0 {
		t.remove(t.tab.setupHead, t.tab.at(t.tab.setupHead))
		t.stats.Shed++
	}
	if t.tab.used >= t.cfg.MaxRecords {
		t.stats.Refused++
		return
	}
	i := t.tab.alloc(hash)
	if i == 0 {
		t.stats.Refused++ // 2^32 slots: not reachable under a sane cap
		return
	}
	t.seq++
	r := t.tab.at(i)
	r.seq = t.seq
	r.arena, r.ends = arena, ends
	r.init = ts
	r.state = Init
	t.stats.Active[Init]++
	t.tab.setupAppend(i)
	t.countLive(r)
}

// retag applies a re-INVITE's tag changes to a live record and reports
// whether its tags changed.
func (t *Tracker) retag(r *record, add, remove []string) bool {
	if len(add) == 0 && len(remove) == 0 {
		return false
	}
	old := r.tagsText()
	var tagBuf [64]byte
	tags := tagSection(tagBuf[:0], old, add, remove)
	if string(tags) == old {
		return false
	}
	arena, ends, _ := buildArena(r.texts(), string(tags)) // same texts: they fit
	r.eachTag(t.untag)
	r.arena, r.ends = arena, ends
	r.eachTag(t.tag)
	return true
}

// tagSection appends to b the encoded tag set: the tags of section old,
// then those of add not yet in it, less those of remove.
func tagSection(b []byte, old string, add, remove []string) []byte {
	keep := func(tag string) bool {
		for _, x := range remove {
			if x == tag {
				return false
			}
		}
		return true
	}
	for s := old; s != ""; {
		tag, rest := nextTag(s)
		if keep(tag) {
			b = appendTag(b, tag)
		}
		s = rest
	}
	for k, tag := range add {
		if tag == "" || !keep(tag) || inSection(old, tag) || contains(add[:k], tag) {
			continue
		}
		b = appendTag(b, tag)
	}
	return b
}

func inSection(s, tag string) bool {
	for s != "" {
		t, rest := nextTag(s)
		if t == tag {
			return true
		}
		s = rest
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
