package dispatch

import "errors"

// Sentinel errors. Callers test them with errors.Is; the package wraps them
// with the set, destination or algorithm they concern.
var (
	// ErrNoSet: the destination set does not exist.
	ErrNoSet = errors.New("no such destination set")
	// ErrNoDestination: every destination the algorithm may pick is down.
	ErrNoDestination = errors.New("no destination up")
	// ErrAlgNotSupported: a Kamailio algorithm sipedge does not implement yet.
	ErrAlgNotSupported = errors.New("algorithm not supported")
	// ErrUnknownDestination: no destination of the set has that URI (or IUID).
	ErrUnknownDestination = errors.New("no such destination")
	// ErrEmptyHashKey: a hashing algorithm got an empty key (no Call-ID,
	// no URI host, an empty hash_pvar value).
	ErrEmptyHashKey = errors.New("empty hash key")
	// ErrCallLoadOff: algorithm 10 without a call-load table
	// (ds_hash_size 0, Dispatcher.EnableCallLoad not called).
	ErrCallLoadOff = errors.New("call load is off (ds_hash_size 0)")
	// ErrBadState: a state string that set_state or ds_mark_dst rejects.
	ErrBadState = errors.New("bad state value")
)
