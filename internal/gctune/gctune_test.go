package gctune

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name     string
		live     uint64
		headroom uint64
		max      int
		want     int
	}{
		{"small heap: the full percent", 20 * mib, 256 * mib, 400, 400},
		{"mid heap: the head room bound", 128 * mib, 256 * mib, 400, 200},
		{"big heap: never below Go's default", 1024 * mib, 256 * mib, 400, 100},
		{"nothing live yet", 0, 256 * mib, 400, 400},
		{"a lower maximum holds", 10 * mib, 256 * mib, 150, 150},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Percent(c.live, c.headroom, c.max); got != c.want {
				t.Fatalf("Percent(%d MiB, %d MiB, %d) = %d, want %d", c.live/mib, c.headroom/mib, c.max, got, c.want)
			}
		})
	}
}

// A live heap far above the head room brings the percent down after the
// next collections; Stop leaves it where it is.
func TestTunerFollowsTheLiveHeap(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	tu := Start(400, 8<<20)
	defer tu.Stop()
	big := make([][]byte, 64) // 64 MiB live: eight times the head room
	for i := range big {
		big[i] = make([]byte, 1<<20)
	}
	deadline := time.Now().Add(10 * time.Second)
	for tu.GCPercent() != 100 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // the finalizer goroutine runs
	}
	if got := tu.GCPercent(); got != 100 {
		t.Fatalf("with 64 MiB live and 8 MiB head room the percent is %d, want 100", got)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("the runtime's GC percent is %d, the tuner says 100", got)
	}
	runtime.KeepAlive(big)
	big = nil
	tu.Stop()
	for range 3 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if got := tu.GCPercent(); got != 100 {
		t.Fatalf("after Stop the tuner moved the percent to %d", got)
	}
}

func TestNothingToTune(t *testing.T) {
	if tu := Start(100, 1<<30); !tu.stopped.Load() {
		t.Fatal("a maximum of 100 has nothing to tune")
	}
	if tu := Start(400, 0); !tu.stopped.Load() {
		t.Fatal("no head room: nothing to tune")
	}
}
