package dispatch

// Flags are Kamailio's destination state bits (dispatch.h), with the same
// values so that dispatcher.list files and RPC output mean the same thing.
type Flags uint8

const (
	FlagInactive  Flags = 1  // down: not selected
	FlagTrying    Flags = 2  // failed recently; still selected
	FlagDisabled  Flags = 4  // down by the operator
	FlagProbing   Flags = 8  // pinged with OPTIONS
	FlagNoDNSARes Flags = 16 // not resolved; never pinged, never matched by IsFromList
	FlagNoPing    Flags = 32 // never pinged

	// FlagsMask is every bit a dispatcher.list may set.
	FlagsMask Flags = 63
)

// Down reports whether selection must skip the destination (ds_skip_dst).
func (f Flags) Down() bool { return f&(FlagInactive|FlagDisabled) != 0 }

// String renders the flags as dispatcher.list's RPC FLAGS field does: the
// state letter (I, D, T or A) then P (probing), N (no ping) or X.
func (f Flags) String() string {
	b := [2]byte{'A', 'X'}
	switch {
	case f&FlagInactive != 0:
		b[0] = 'I'
	case f&FlagDisabled != 0:
		b[0] = 'D'
	case f&FlagTrying != 0:
		b[0] = 'T'
	}
	switch {
	case f&FlagProbing != 0:
		b[1] = 'P'
	case f&FlagNoPing != 0:
		b[1] = 'N'
	}
	return string(b[:])
}
