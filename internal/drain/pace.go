package drain

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/time/rate"

	"sluice/consumer"
	"sluice/limiter"
)

// paceWindow is the burst of a pace: a twentieth of a second of orders,
// so that in any second the backend sees at most 5% more than the rate.
const paceWindow = time.Second / 20

// newPace is a limiter of r orders per second, or none (rate.Inf) for 0.
func newPace(r float64) *rate.Limiter { return limiter.NewRate(r, limiter.Burst(r, paceWindow)) }

// setPace changes a pace to r orders per second, or none for 0.
func setPace(l *rate.Limiter, r float64) { limiter.SetRate(l, r, limiter.Burst(r, paceWindow)) }

// batchSize is how many orders a worker fetches: Batch, or less when a
// pace would not let that many through at once.
func (d *Drainer) batchSize(sd *saleDrain) int {
	n := d.cfg.Batch
	for _, l := range []*rate.Limiter{d.pace, sd.pace} {
		if l.Limit() != rate.Inf {
			n = min(n, l.Burst())
		}
	}
	return n
}

// waitPace takes one token per order from the sale's pace and the
// process's, in steps no larger than a burst, so a backend paced at r
// orders/s sees no more than that whatever the batch.
func (d *Drainer) waitPace(ctx context.Context, sd *saleDrain, n int) error {
	start := time.Now()
	defer func() {
		if w := time.Since(start); w > time.Millisecond {
			d.m.paceWait.Add(w.Seconds())
		}
	}()
	for _, l := range []*rate.Limiter{sd.pace, d.pace} {
		for left := n; left > 0 && l.Limit() != rate.Inf; {
			k := min(left, l.Burst())
			if err := d.waitTokens(ctx, l, k); err != nil {
				return fmt.Errorf("%w: waiting for the backend's pace: %w", consumer.ErrUnavailable, err)
			}
			left -= k
		}
	}
	return nil
}

// errStopping: the drain began to stop while a batch waited for its pace.
var errStopping = errors.New("the drain is stopping")

// waitTokens is l.WaitN(ctx, k), given up (its tokens given back) when
// the drain begins to stop: a shutdown waits for the backend calls under
// way, not for the pace, which at a low backend_rate would hold it for
// as many seconds as batches are queued for it. Tokens there already are
// taken even then: such a batch goes on as any batch under way.
func (d *Drainer) waitTokens(ctx context.Context, l *rate.Limiter, k int) error {
	r := l.ReserveN(time.Now(), k)
	if !r.OK() {
		return fmt.Errorf("%d orders exceed the pace's burst of %d", k, l.Burst())
	}
	wait := r.Delay()
	if wait == 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return ctx.Err()
	case <-d.stopFetch:
		r.Cancel()
		return errStopping
	}
}
