// Package periodic runs a function at a fixed interval in a goroutine of
// its own until it is stopped: the background loops of a gate and of the
// drain (refreshing state, probing, sampling, discovering sales).
//
// It starts one goroutine per Loop and no other; Stop returns only when
// that goroutine has exited.
package periodic

import (
	"context"
	"time"
)

// Loop calls a function every interval from one goroutine. Its zero value
// is not usable: make one with Every. It is safe for concurrent use.
type Loop struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Every starts calling fn every interval, the first time one interval
// from now, until Stop is called or ctx ends. Each call gets a context
// derived from ctx that Stop cancels, so that a call under way ends
// early. Calls never overlap: one that outlasts the interval makes the
// loop skip the ticks it missed (time.Ticker drops them).
func Every(ctx context.Context, interval time.Duration, fn func(context.Context)) *Loop {
	ctx, cancel := context.WithCancel(ctx)
	l := &Loop{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				fn(ctx)
			}
		}
	}()
	return l
}

// Stop cancels the context of the call under way, if any, and returns
// when the loop's goroutine has exited. Calling it twice, or from several
// goroutines, is safe.
func (l *Loop) Stop() {
	l.cancel()
	<-l.done
}

// Done is closed when the loop's goroutine has exited: after Stop, or
// once the context given to Every has ended.
func (l *Loop) Done() <-chan struct{} { return l.done }
