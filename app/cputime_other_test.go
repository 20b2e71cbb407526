//go:build !unix

package app

import "time"

// processCPU is 0 where the process's CPU time is not read: no cpu-ns/op is reported.
func processCPU() time.Duration { return 0 }
