//go:build !race

package tests

// raceEnabled: this binary runs under the race detector, which multiplies memory and time.
const raceEnabled = false
