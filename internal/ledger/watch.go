package ledger

import (
	"context"
	"time"

	"sluice/internal/periodic"
)

// Watcher polls the ledger's sale states in the background and hands each
// round to a callback, so request paths read cached counts and never ask
// JetStream. Stop ends it.
type Watcher struct {
	loop *periodic.Loop
}

// Watch starts polling States every interval, calling fn with each result
// (or the error of a failed round) and when the round began reading, from
// one goroutine. The first round runs
// before Watch returns, so callers start with a full picture when JetStream
// answers.
func (l *Ledger) Watch(ctx context.Context, every time.Duration, fn func(read time.Time, states []SaleState, err error)) *Watcher {
	round := func(ctx context.Context) {
		rctx, rcancel := context.WithTimeout(ctx, every*4+time.Second)
		defer rcancel()
		read := time.Now()
		st, err := l.States(rctx)
		if ctx.Err() != nil {
			return
		}
		fn(read, st, err)
	}
	round(ctx)
	return &Watcher{loop: periodic.Every(ctx, every, round)}
}

// Stop ends the polling and returns when the goroutine has exited. It is
// safe to call more than once.
func (w *Watcher) Stop() { w.loop.Stop() }
