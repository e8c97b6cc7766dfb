package rpc

import (
	"context"
	"errors"
	"time"

	"github.com/sipedge/sipedge/userspace/dialog"
)

// Kamailio's fault texts for the dlgs methods (dlgs_mod.c).
const (
	msgDlgsParams = "Invalid Parameters"
	msgDlgsField  = "Invalid Field"
	msgDlgsOp     = "Invalid Operator"
	msgDlgsValue  = "Invalid Matching Value"
	msgDlgsOff    = "Dialog tracking is off"
)

// Dialogs is what the dlgs.* methods need; *dialog.Tracker has it.
type Dialogs interface {
	List(max int) []dialog.Record
	Find(q dialog.Query, max int) []dialog.Record
	Count(q dialog.Query) int
	TagsCount(tag string) int
	Stats() dialog.Stats
}

// DlgsItem is one record of dlgs.list, dlgs.get and dlgs.getall, with
// Kamailio's keys in its order (master's, with branch); then sipedge's
// tags. Count is a running index, as Kamailio's; times are Unix seconds,
// 0 when not reached.
type DlgsItem struct {
	Count    int      `json:"count"`
	Src      string   `json:"src"`
	Dst      string   `json:"dst"`
	Data     string   `json:"data"`
	RUID     string   `json:"ruid"`
	CallID   string   `json:"callid"`
	Branch   string   `json:"branch"`
	FromTag  string   `json:"ftag"`
	ToTag    string   `json:"ttag"`
	TsInit   int64    `json:"ts_init"`
	TsAnswer int64    `json:"ts_answer"`
	State    int      `json:"state"`
	Tags     []string `json:"tags"` // [] when none
}

// DlgsBrief is one record of dlgs.briefing, as Kamailio's.
type DlgsBrief struct {
	Count  int    `json:"count"`
	Src    string `json:"src"`
	Dst    string `json:"dst"`
	CallID string `json:"callid"`
	Branch string `json:"branch"`
	State  int    `json:"state"`
}

// DlgsStateCounts is one half of dlgs.stats. Kamailio spells the
// terminated key "terminted"; sipedge gives both spellings the same value,
// so a script written for Kamailio keeps working (docs/dialogs.md).
type DlgsStateCounts struct {
	Init        uint64 `json:"init"`
	Progress    uint64 `json:"progress"`
	Answered    uint64 `json:"answered"`
	Confirmed   uint64 `json:"confirmed"`
	Terminated  uint64 `json:"terminated"`
	Terminted   uint64 `json:"terminted"`
	NotAnswered uint64 `json:"notanswered"`
}

// DlgsStats is dlgs.stats: Kamailio's final and active counts, then what
// the tracker counted and did not apply.
type DlgsStats struct {
	Final     DlgsStateCounts `json:"final"`
	Active    DlgsStateCounts `json:"active"`
	Unmatched uint64          `json:"unmatched"`
	Ignored   uint64          `json:"ignored"`
	Shed      uint64          `json:"shed"`
	Refused   uint64          `json:"refused"`
	Underflow uint64          `json:"underflow"`
}

// RegisterDialogs registers dlgs.list, briefing, get, getall, stats, count
// and tags_count on s. d nil (dialogs.enabled false) registers them all
// answering a fault that says so, so a script learns why rather than
// "method not found".
func RegisterDialogs(s *Server, d Dialogs) {
	off := func(context.Context, Params) (any, error) {
		return nil, Errorf(CodeFault, msgDlgsOff, "dialogs.enabled is false in the config")
	}
	if d == nil {
		for _, m := range []string{"list", "briefing", "get", "getall", "stats", "count", "tags_count"} {
			s.Register("dlgs."+m, off)
		}
		return
	}
	s.Register("dlgs.list", func(_ context.Context, p Params) (any, error) {
		if err := p.Max(0); err != nil {
			return nil, err
		}
		return dlgsItems(d.List(0)), nil
	})
	s.Register("dlgs.briefing", func(_ context.Context, p Params) (any, error) {
		if err := p.Max(0); err != nil {
			return nil, err
		}
		recs := d.List(0)
		out := make([]DlgsBrief, 0, len(recs))
		for i, r := range recs {
			out = append(out, DlgsBrief{Count: i + 1, Src: r.Src, Dst: r.Dst, CallID: r.CallID, Branch: r.Branch, State: int(r.State)})
		}
		return out, nil
	})
	get := func(max int) Handler {
		return func(_ context.Context, p Params) (any, error) {
			q, err := dlgsQuery(p)
			if err != nil {
				return nil, err
			}
			return dlgsItems(d.Find(q, max)), nil
		}
	}
	s.Register("dlgs.get", get(1))
	s.Register("dlgs.getall", get(0))
	s.Register("dlgs.count", func(_ context.Context, p Params) (any, error) {
		q, err := dlgsQuery(p)
		if err != nil {
			return nil, err
		}
		return d.Count(q), nil
	})
	s.Register("dlgs.tags_count", func(_ context.Context, p Params) (any, error) {
		if p.Len() != 1 {
			return nil, Errorf(CodeFault, msgDlgsParams, "want 1 parameter (tag), got %d", p.Len())
		}
		tag, err := dlgsString(p, 0)
		if err != nil {
			return nil, err
		}
		return d.TagsCount(tag), nil
	})
	s.Register("dlgs.stats", func(_ context.Context, p Params) (any, error) {
		if err := p.Max(0); err != nil {
			return nil, err
		}
		st := d.Stats()
		return DlgsStats{
			Final: dlgsCounts(st.Final), Active: dlgsCounts(st.Active),
			Unmatched: st.Unmatched, Ignored: st.Ignored, Shed: st.Shed, Refused: st.Refused, Underflow: st.Underflow,
		}, nil
	})
}

// dlgsQuery reads the three parameters field, op and value, answering
// Kamailio's fault texts with the precise reason in Data.
func dlgsQuery(p Params) (dialog.Query, error) {
	if p.Len() != 3 {
		return dialog.Query{}, Errorf(CodeFault, msgDlgsParams, "want 3 parameters (field, op, value), got %d", p.Len())
	}
	var s [3]string
	for i := range s {
		v, err := dlgsString(p, i)
		if err != nil {
			return dialog.Query{}, err
		}
		s[i] = v
	}
	q, err := dialog.ParseQuery(s[0], s[1], s[2])
	if err != nil {
		msg := msgDlgsValue
		switch {
		case errors.Is(err, dialog.ErrUnknownField):
			msg = msgDlgsField
		case errors.Is(err, dialog.ErrUnknownOp):
			msg = msgDlgsOp
		}
		return dialog.Query{}, Errorf(CodeFault, msg, "%v", err)
	}
	return q, nil
}

// dlgsString is param i as a string, or Kamailio's "Invalid Parameters"
// fault (its rpc->scan failing) with the reason in Data.
func dlgsString(p Params, i int) (string, error) {
	v, err := p.String(i)
	if e, ok := err.(*Error); ok {
		return "", Errorf(CodeFault, msgDlgsParams, "%s", e.Data)
	}
	return v, err
}

func dlgsItems(recs []dialog.Record) []DlgsItem {
	out := make([]DlgsItem, 0, len(recs))
	for i, r := range recs {
		tags := r.Tags
		if tags == nil {
			tags = []string{}
		}
		out = append(out, DlgsItem{
			Count: i + 1, Src: r.Src, Dst: r.Dst, Data: r.Data, RUID: r.RUID, CallID: r.CallID, Branch: r.Branch,
			FromTag: r.FromTag, ToTag: r.ToTag, TsInit: unixOrZero(r.Init), TsAnswer: unixOrZero(r.Answer),
			State: int(r.State), Tags: tags,
		})
	}
	return out
}

func dlgsCounts(c [dialog.NumStates]uint64) DlgsStateCounts {
	return DlgsStateCounts{
		Init: c[dialog.Init], Progress: c[dialog.Progress], Answered: c[dialog.Answered], Confirmed: c[dialog.Confirmed],
		Terminated: c[dialog.Terminated], Terminted: c[dialog.Terminated], NotAnswered: c[dialog.NotAnswered],
	}
}

// unixOrZero is t in Unix seconds, 0 for the zero time (Kamailio's
// ts_answer before an answer).
func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}
