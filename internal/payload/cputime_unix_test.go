//go:build unix

package payload

import (
	"syscall"
	"time"
)

// processCPU is the CPU time this process used, user and system: unlike
// the wall clock, what other processes on a shared machine take does
// not count.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
