//go:build !linux

package loadtest

import "time"

// threadCPU falls back to the wall clock where the thread's CPU time is
// not read: on a busy machine it overstates a proof's cost.
func threadCPU() time.Duration { return time.Duration(time.Now().UnixNano()) }

// processCPU is not read here: the reports' CPU figures are 0.
func processCPU() time.Duration { return 0 }

// peakRSS is not read here: 0.
func peakRSS() int64 { return 0 }
