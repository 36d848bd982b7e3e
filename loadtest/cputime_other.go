//go:build !linux

package loadtest

import "time"

// threadCPU falls back to the wall clock where the thread's CPU time is
// not read: on a busy machine it overstates a proof's cost.
func threadCPU() time.Duration { return time.Duration(time.Now().UnixNano()) }
