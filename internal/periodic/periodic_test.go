package periodic_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"sluice/internal/periodic"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The loop calls fn at its interval, and Stop cancels the call under way
// and returns only once the goroutine has exited: nothing runs after it.
func TestStopEndsTheCallUnderWayAndWaits(t *testing.T) {
	var calls, after atomic.Int32
	entered := make(chan struct{}, 1)
	var stopped atomic.Bool
	l := periodic.Every(context.Background(), time.Millisecond, func(ctx context.Context) {
		if stopped.Load() {
			after.Add(1)
		}
		if calls.Add(1) == 3 {
			entered <- struct{}{}
			<-ctx.Done() // the third call lasts until Stop
		}
	})
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("three calls did not come within 10 s at an interval of 1 ms")
	}
	l.Stop()
	stopped.Store(true)
	select {
	case <-l.Done():
	default:
		t.Fatal("Stop returned before the goroutine exited")
	}
	l.Stop() // twice is safe
	time.Sleep(5 * time.Millisecond)
	if n := after.Load(); n != 0 {
		t.Fatalf("%d calls after Stop returned", n)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d calls; the third held the loop until Stop", n)
	}
}

// The loop ends by itself once the context given to Every ends.
func TestEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	l := periodic.Every(ctx, time.Hour, func(context.Context) { t.Error("called before its interval") })
	cancel()
	select {
	case <-l.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the loop outlived its context")
	}
	l.Stop()
}
