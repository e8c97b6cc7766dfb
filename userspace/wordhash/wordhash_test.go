package wordhash

import "testing"

// The vectors are the contract's (branch token, first rows) and the fast
// path's Call-ID key; they pin the function, so a change here is a change
// of the wire format shared with bpf/hash.h.
func TestVectors(t *testing.T) {
	tests := []struct {
		name string
		got  uint64
		want uint64
	}{
		{name: "empty tail only", got: Finish(Absorb(SeedBranch, nil)), want: Finish(mix(SeedBranch, 0))},
		{name: "7 bytes: one tail word", got: Absorb(0, []byte("abcdefg")),
			want: mix(0, 7<<56|0x67666564636261)},
		{name: "8 bytes: a word and an empty tail", got: Absorb(0, []byte("abcdefgh")),
			want: mix(mix(0, 0x6867666564636261), 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %016x, want %016x", tc.got, tc.want)
			}
		})
	}
}
