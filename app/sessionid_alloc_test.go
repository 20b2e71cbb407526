//go:build !race

// The race detector makes sync.Pool drop what it is given, so allocations are counted only
// without it.

package app

import "testing"

// Checking an id, valid or forged, allocates nothing.
func TestValidAllocatesNothing(t *testing.T) {
	ids := newSessionIDs(make([]byte, keyLen), []byte("another key of thirty-two bytes!"))
	good := ids.New()
	forged := good[:idRandLen] + "AAAAAAAAAAAAAAAAAAAAAAAAAA"
	for _, id := range []string{good, forged} {
		if n := testing.AllocsPerRun(100, func() { ids.Valid(id) }); n != 0 {
			t.Errorf("Valid(%s...): %v allocations, want 0", id[:8], n)
		}
	}
}
