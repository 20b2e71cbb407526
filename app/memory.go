package app

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// What the default memory limit (defaultMemoryLimit) allows for. A password check holds its
// argon2id memory (19 MiB, users' parameters) until it returns, and the Go runtime lets the
// heap grow to twice what was live at its last collection: without a limit, two hashing slots
// under steady logins took the process to 124-143 MiB of RSS (TestLoginMemory, GOMEMLIMIT=off).
const (
	memoryBase       = 32 << 20 // the idle server: runtime, pools, routes, buffers
	memoryPerHash    = 20 << 20 // one password check in flight, with its allocation slack
	memoryPerSession = 2 << 10  // one session in memory, its user agent at its 256-byte cut
)

// defaultMemoryLimit is the Go runtime's soft memory limit (GOMEMLIMIT) when none is set:
// room for the idle server, every hashing slot busy and the memory tier full, so that the
// collector works harder only when the process nears what its settings can need, not at half
// of it. It is a soft limit: live memory above it slows the process, never stops it.
func defaultMemoryLimit(hashSlots, cacheCapacity int) int64 {
	return memoryBase + int64(hashSlots)*memoryPerHash + int64(cacheCapacity)*memoryPerSession
}

// parseMemoryLimit reads GOMEMLIMIT as the Go runtime does: "off" (no limit, math.MaxInt64),
// or a whole number of bytes with an optional unit B, KiB, MiB, GiB or TiB. It refuses 0.
func parseMemoryLimit(v string) (int64, error) {
	if v == "off" {
		return math.MaxInt64, nil
	}
	bad := errors.New("is not a size such as 256MiB or 1GiB, or off")
	digits := strings.TrimRight(v, "BKMGTi")
	shift := map[string]uint{"": 0, "B": 0, "KiB": 10, "MiB": 20, "GiB": 30, "TiB": 40}
	s, ok := shift[v[len(digits):]]
	if !ok || digits == "" {
		return 0, bad
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64>>s {
		return 0, bad
	}
	if n == 0 {
		return 0, errors.New("is 0, which would keep the collector running; set off for no limit")
	}
	return n << s, nil
}
