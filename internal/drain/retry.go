package drain

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"sluice/consumer"
)

// retry sends an order back for a later attempt, or dead-letters it once
// MaxDeliver of its attempts failed while the backend was deciding other
// orders. An outage of the whole backend (consumer.ErrUnavailable, or
// nothing decided lately) never counts, so it never dead-letters anything.
func (d *Drainer) retry(ctx context.Context, sd *saleDrain, it item, cause error) {
	if errors.Is(cause, errStopping) {
		// Never sent: back to the stream at once, for the next drain.
		_ = it.msg.Nak()
		return
	}
	if !errors.Is(cause, consumer.ErrUnavailable) && d.backendHealthy() {
		d.mu.Lock()
		d.failures[it.id.String()]++
		n := d.failures[it.id.String()]
		d.mu.Unlock()
		if n >= d.cfg.MaxDeliver {
			reason := "backend kept failing"
			if cause != nil {
				reason = cause.Error()
			}
			d.deadLetter(ctx, sd, it, reason)
			return
		}
	}
	_ = it.msg.NakWithDelay(d.backoff(it.meta.NumDelivered))
	d.m.drained.WithLabelValues(sd.name, outcomeRetried).Inc()
}

// noteHealth follows the backend's health from a call's outcome: a call
// that decided an order says it is up; one that decided none says it is
// down when it found the backend unavailable (unreachable, timing out) or
// when nothing was decided lately (an endpoint answering 5xx to
// everything). The log gets one line when it goes down and one when it is
// back, not one per retry.
func (d *Drainer) noteHealth(res []consumer.Result, err error) {
	decided, allUnavailable := false, errors.Is(err, consumer.ErrUnavailable)
	if err == nil {
		allUnavailable = len(res) > 0
		for _, r := range res {
			if r.Outcome != consumer.Retry {
				decided = true
			}
			if r.Outcome != consumer.Retry || !errors.Is(r.Err, consumer.ErrUnavailable) {
				allUnavailable = false
			}
		}
	}
	unavailable := !decided && (allUnavailable || !d.backendHealthy())
	now := time.Now()
	switch {
	case decided:
		d.lastOK.Store(now.UnixNano())
		if since := d.downSince.Swap(0); since != 0 {
			d.log.Info("drain: backend is back", "down_for", now.Sub(time.Unix(0, since)).Round(time.Millisecond),
				"backlog", d.backlog.Load())
		}
	case unavailable:
		cause := err
		if cause == nil && len(res) > 0 {
			cause = res[0].Err
		}
		if d.downSince.CompareAndSwap(0, now.UnixNano()) {
			d.log.Warn("drain: backend unavailable; orders stay in the ledger and are retried until it is back",
				"err", cause, "backlog", d.backlog.Load())
		}
	}
}

// backendHealthy says the backend decided an order lately.
func (d *Drainer) backendHealthy() bool {
	return time.Since(time.Unix(0, d.lastOK.Load())) < max(10*time.Second, 2*d.cfg.BackoffMax)
}

func (d *Drainer) forget(id string) {
	d.mu.Lock()
	delete(d.failures, id)
	d.mu.Unlock()
}

// backoff is BackoffBase × 2^(attempt-1), capped, with jitter over its
// upper half so that retries of a burst spread out.
func (d *Drainer) backoff(attempt uint64) time.Duration {
	delay := d.cfg.BackoffBase
	for i := uint64(1); i < attempt && delay < d.cfg.BackoffMax; i++ {
		delay *= 2
	}
	delay = min(delay, d.cfg.BackoffMax)
	return delay/2 + rand.N(delay/2+1)
}
