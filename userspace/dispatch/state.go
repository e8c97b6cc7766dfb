package dispatch

import (
	"fmt"
	"strings"
)

// stateBits are the bits a state change rewrites. Kamailio clears all six
// flag bits (DS_STATES_ALL), which also drops NODNSARES and NOPING, both of
// which are configuration, not state: sipedge keeps them.
const stateBits = FlagInactive | FlagTrying | FlagDisabled | FlagProbing

// ProbingMode is modparam ds_probing_mode (§3.1).
type ProbingMode int

// The probing modes.
const (
	ProbeFlagged     ProbingMode = 0 // ping PROBING destinations until their first result
	ProbeAll         ProbingMode = 1 // ping every destination
	ProbeInactive    ProbingMode = 2 // ping PROBING destinations that are INACTIVE
	ProbeOnlyFlagged ProbingMode = 3 // ping PROBING destinations, keep PROBING
	maxProbingMode               = ProbeOnlyFlagged
)

// ProbeParams are the modparams that steer the probing state machine.
type ProbeParams struct {
	Mode ProbingMode
	// ProbingThreshold is ds_probing_threshold: failed probes before an
	// active destination becomes inactive (Kamailio default 1).
	ProbingThreshold int
	// InactiveThreshold is ds_inactive_threshold: successful probes before
	// an inactive destination becomes active (Kamailio default 1).
	InactiveThreshold int
}

// DefaultProbeParams are Kamailio's defaults.
func DefaultProbeParams() ProbeParams {
	return ProbeParams{Mode: ProbeFlagged, ProbingThreshold: 1, InactiveThreshold: 1}
}

// ShouldPing reports whether a destination with flags f is pinged in this
// mode (ds_ping_set): never when disabled, no-ping or not resolved;
// otherwise per Mode.
func (p ProbeParams) ShouldPing(f Flags) bool {
	if f&(FlagDisabled|FlagNoPing|FlagNoDNSARes) != 0 {
		return false
	}
	switch p.Mode {
	case ProbeAll:
		return true
	case ProbeInactive:
		return f&FlagProbing != 0 && f&FlagInactive != 0
	default:
		return f&FlagProbing != 0
	}
}

// requestedByProbe is the state a probe result asks for (ds_options_callback).
func requestedByProbe(cur Flags, success bool, mode ProbingMode) Flags {
	if success {
		if mode == ProbeAll || (mode == ProbeOnlyFlagged && cur&FlagProbing != 0) {
			return FlagProbing
		}
		return 0
	}
	if mode != ProbeFlagged {
		return FlagTrying | FlagProbing
	}
	return FlagTrying
}

// transition applies a requested state the way ds_update_state does and
// returns the new flags and probing count. bypass is the mode of
// ds_mark_dst: no thresholds, TRYING goes inactive at once and a success
// goes active at once.
func transition(old Flags, count int, req Flags, bypass bool, p ProbeParams) (Flags, int) {
	keep := old &^ stateBits
	req &= stateBits
	askedTrying := req&FlagTrying != 0
	if askedTrying && old&FlagInactive != 0 {
		// An inactive destination must come up before it can be trying.
		req = req&^FlagTrying | FlagInactive
	}
	f := req
	if req&FlagDisabled != 0 {
		f = FlagDisabled
	}
	switch {
	case req&FlagTrying != 0:
		count++
		if bypass || count >= p.ProbingThreshold {
			f = f&^FlagTrying | FlagInactive
			count = 0
		}
	case !askedTrying && old&FlagInactive != 0:
		count++
		if !bypass && count < p.InactiveThreshold {
			f |= FlagInactive
			if old&FlagProbing != 0 {
				f |= FlagProbing
			}
		} else {
			count = 0
		}
	default:
		// Success while trying or active, or a failure while inactive:
		// the count starts over.
		count = 0
	}
	return f | keep, count
}

// parseRPCState reads dispatcher.set_state's state: the first character
// 0/i, 1/a, 2/d or 3/t (inactive, active, disabled, trying), optionally
// followed by p (probing). Kamailio ignores anything after; sipedge rejects
// it.
func parseRPCState(s string) (Flags, error) {
	if s == "" || len(s) > 2 {
		return 0, fmt.Errorf("state %q: %w", s, ErrBadState)
	}
	var f Flags
	switch s[0] {
	case '0', 'i', 'I':
		f = FlagInactive
	case '1', 'a', 'A':
		f = 0
	case '2', 'd', 'D':
		f = FlagDisabled
	case '3', 't', 'T':
		f = FlagTrying
	default:
		return 0, fmt.Errorf("state %q: %w", s, ErrBadState)
	}
	if len(s) == 2 {
		if s[1] != 'p' && s[1] != 'P' {
			return 0, fmt.Errorf("state %q: %w", s, ErrBadState)
		}
		f |= FlagProbing
	}
	return f, nil
}

// parseMarkState reads ds_mark_dst's state letters (ds_parse_flags), any
// case: a (clears the state bits), i, t, d, p. Empty means inactive.
func parseMarkState(s string) (Flags, error) {
	if s == "" {
		return FlagInactive, nil
	}
	var f Flags
	for _, c := range strings.ToLower(s) {
		switch c {
		case 'a':
			f &^= FlagInactive | FlagTrying | FlagDisabled
		case 'i':
			f |= FlagInactive
		case 't':
			f |= FlagTrying
		case 'd':
			f |= FlagDisabled
		case 'p':
			f |= FlagProbing
		default:
			return 0, fmt.Errorf("state %q: %w", s, ErrBadState)
		}
	}
	return f, nil
}
