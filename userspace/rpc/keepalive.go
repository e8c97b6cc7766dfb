package rpc

import (
	"context"
	"time"

	"github.com/sipedge/sipedge/userspace/keepalive"
)

// Kamailio's answers and fault texts for the keepalive methods
// (keepalive_rpc.c).
const (
	okKAAdded     = "Ok. Destination added."
	okKARemoved   = "Ok. Destination removed."
	okKAFlushed   = "Ok. Destination list flushed."
	msgKAAddFail  = "couldn't add data to list"
	msgKADelFail  = "couldn't delete data from list"
	msgKAGetFail  = "couldn't get data from list"
	kaNeverString = "never"
)

// Keepalive is what the keepalive.* methods need; *keepalive.Module has
// it. An interface, so that this package needs no agent.
type Keepalive interface {
	List() []keepalive.Entry
	Get(uri, owner string) (keepalive.Entry, error)
	Add(uri, owner string, onChange func(keepalive.Change)) error
	Remove(uri, owner string) error
	Flush()
}

// KeepaliveDest is one (destination, owner) of keepalive.list, with
// Kamailio's keys in its order (the spaces are Kamailio's), then
// sipedge's: Failures (the failed probes in a row, which delete_counter
// compares) and Address (the IP:port probed, "" while a host name has not
// resolved). Times are ctime(3) without its newline, local time, "never"
// when it has not happened (Kamailio prints the epoch).
type KeepaliveDest struct {
	URI         string `json:"uri"`
	Owner       string `json:"owner"`
	LastChecked string `json:"last checked"`
	LastUp      string `json:"last up"`
	LastDown    string `json:"last down"`
	State       int    `json:"state"` // 0 unknown, 1 up, 2 down
	Failures    int    `json:"failures"`
	Address     string `json:"address"`
}

// KeepaliveGet is keepalive.get's result, as Kamailio's.
type KeepaliveGet struct {
	URI   string `json:"uri"`
	Owner string `json:"owner"`
	State int    `json:"state"`
}

// RegisterKeepalive registers keepalive.list, add, del, get and flush on s,
// backed by m.
func RegisterKeepalive(s *Server, m Keepalive) {
	s.Register("keepalive.list", func(_ context.Context, p Params) (any, error) {
		if err := p.Max(0); err != nil {
			return nil, err
		}
		// A JSON array, [] when empty: Kamailio's is not flagged as an
		// array, so jsonrpcs keeps only the last object (and an empty list
		// crashed it, kamailio#2618).
		entries := m.List()
		out := make([]KeepaliveDest, 0, len(entries))
		for _, e := range entries {
			d := KeepaliveDest{
				URI: e.URI, Owner: e.Owner, State: int(e.State), Failures: e.Failures,
				LastChecked: ctimeOrNever(e.LastChecked), LastUp: ctimeOrNever(e.LastUp), LastDown: ctimeOrNever(e.LastDown),
			}
			if e.Addr.IsValid() {
				d.Address = e.Addr.String()
			}
			out = append(out, d)
		}
		return out, nil
	})
	s.Register("keepalive.add", func(_ context.Context, p Params) (any, error) {
		uri, owner, err := uriOwner(p)
		if err != nil {
			return nil, err
		}
		if err := m.Add(uri, owner, nil); err != nil {
			return nil, &Error{Code: CodeFault, Message: msgKAAddFail, Data: err.Error()}
		}
		return okKAAdded, nil
	})
	s.Register("keepalive.del", func(_ context.Context, p Params) (any, error) {
		uri, owner, err := uriOwner(p)
		if err != nil {
			return nil, err
		}
		if err := m.Remove(uri, owner); err != nil {
			return nil, &Error{Code: CodeFault, Message: msgKADelFail, Data: err.Error()}
		}
		return okKARemoved, nil
	})
	s.Register("keepalive.get", func(_ context.Context, p Params) (any, error) {
		uri, owner, err := uriOwner(p)
		if err != nil {
			return nil, err
		}
		e, err := m.Get(uri, owner)
		if err != nil {
			return nil, &Error{Code: CodeFault, Message: msgKAGetFail, Data: err.Error()}
		}
		return KeepaliveGet{URI: e.URI, Owner: e.Owner, State: int(e.State)}, nil
	})
	s.Register("keepalive.flush", func(_ context.Context, p Params) (any, error) {
		if err := p.Max(0); err != nil {
			return nil, err
		}
		m.Flush()
		return okKAFlushed, nil
	})
}

// uriOwner reads the params "uri owner" (Kamailio's "sip_uri listname").
func uriOwner(p Params) (uri, owner string, err error) {
	if err := p.Max(2); err != nil {
		return "", "", err
	}
	if uri, err = p.String(0); err != nil {
		return "", "", err
	}
	if owner, err = p.String(1); err != nil {
		return "", "", err
	}
	if uri == "" || owner == "" {
		return "", "", paramError(0, "uri and owner must not be empty")
	}
	return uri, owner, nil
}

func ctimeOrNever(t time.Time) string {
	if t.IsZero() {
		return kaNeverString
	}
	return t.Format(ctimeLayout)
}
