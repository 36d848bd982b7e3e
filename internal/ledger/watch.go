package ledger

import (
	"context"
	"sync"
	"time"
)

// Watcher polls the ledger's sale states in the background and hands each
// round to a callback, so request paths read cached counts and never ask
// JetStream. Stop ends it.
type Watcher struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Watch starts polling States every interval, calling fn with each result
// (or the error of a failed round) and when the round began reading, from
// one goroutine. The first round runs
// before Watch returns, so callers start with a full picture when JetStream
// answers.
func (l *Ledger) Watch(ctx context.Context, every time.Duration, fn func(read time.Time, states []SaleState, err error)) *Watcher {
	ctx, cancel := context.WithCancel(ctx)
	w := &Watcher{cancel: cancel, done: make(chan struct{})}
	round := func() {
		rctx, rcancel := context.WithTimeout(ctx, every*4+time.Second)
		defer rcancel()
		read := time.Now()
		st, err := l.States(rctx)
		if ctx.Err() != nil {
			return
		}
		fn(read, st, err)
	}
	round()
	go func() {
		defer close(w.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				round()
			}
		}
	}()
	return w
}

// Stop ends the polling and returns when the goroutine has exited. It is
// safe to call more than once.
func (w *Watcher) Stop() {
	w.once.Do(w.cancel)
	<-w.done
}
