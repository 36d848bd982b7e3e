package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Options is a whole rehearsal: the run, the live progress, the outcome
// check.
type Options struct {
	Config
	// Verify runs the outcome check after the run.
	Verify bool
	// VerifyTimeout bounds the wait for the queue to drain; default 60 s.
	VerifyTimeout time.Duration
	// Progress, if set, gets a progress line every second: one line
	// rewritten in place when TTY is true, plain lines otherwise.
	Progress io.Writer
	TTY      bool
	// SampleEvery is how often the sale's state is read for the charts;
	// default 500 ms.
	SampleEvery time.Duration
	// Metrics, if set, is fed as the run goes.
	Metrics *Metrics
}

// Rehearse runs a rehearsal and returns its report. The report's
// Verification, when the check ran, says whether the sale ended right.
func Rehearse(ctx context.Context, o Options) (Report, error) {
	if o.VerifyTimeout <= 0 {
		o.VerifyTimeout = 60 * time.Second
	}
	if o.SampleEvery <= 0 {
		o.SampleEvery = 500 * time.Millisecond
	}
	o.Config.defaults()
	// The target is checked before anything, the preflight's GET included,
	// is sent to it.
	if err := CheckTarget(o.Target, o.AllowRemote); err != nil {
		return Report{}, err
	}
	if err := preflight(ctx, o); err != nil {
		return Report{}, err
	}
	run, err := Attack(ctx, o.Config)
	if err != nil {
		return Report{}, err
	}
	agg := NewAggregator(run.Start, o.LateAfter)
	agg.Zoom(o.Profile.T0())
	client := &http.Client{Timeout: 10 * time.Second}
	base := strings.TrimRight(o.Target, "/")

	sampleCtx, stopSampling := context.WithCancel(ctx)
	var samples []SaleSample
	var sampling sync.WaitGroup
	sampling.Add(1)
	go func() {
		defer sampling.Done()
		t := time.NewTicker(o.SampleEvery)
		defer t.Stop()
		for {
			if st, err := getSale(sampleCtx, client, base, o.Sale); err == nil {
				samples = append(samples, SaleSample{T: time.Since(run.Start).Seconds(), State: st.State,
					Admitted: st.Admitted, Remaining: st.Remaining, Confirmed: st.Confirmed, QueueDepth: st.QueueDepth})
			}
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
			}
		}
	}()

	progress := newProgress(o.Progress, o.TTY, agg, run)
	if o.Metrics != nil {
		o.Metrics.start(o.Profile, run.Start)
	}
	var admitted []Admission
	for r := range run.Results {
		agg.Add(r)
		if o.Metrics != nil {
			o.Metrics.observe(r, o.LateAfter)
		}
		// An admitted order: 202, or with Prefer: wait its decision (201,
		// or a refusal naming the backend's reason).
		if (r.Status == http.StatusAccepted || r.Decided) && r.OrderID != "" {
			admitted = append(admitted, Admission{OrderID: r.OrderID, Buyer: r.Buyer, Key: r.Key, Variant: r.Variant})
		}
	}
	if o.Metrics != nil {
		o.Metrics.finish(run.Dropped())
	}
	progress.stop()
	// over, not ctx.Err: the dispatcher stops once the clock passes the
	// deadline, which can be a moment before ctx's timer fires.
	interrupted := over(ctx)
	agg.setInterrupted(interrupted)

	var verification *Verification
	if o.Verify && !interrupted {
		perBuyer := int64(1)
		if st, err := getSale(ctx, client, base, o.Sale); err == nil && st.PerBuyer > 0 {
			perBuyer = st.PerBuyer
		}
		v := Verify(ctx, client, o.Target, o.Sale, admitted, perBuyer, o.VerifyTimeout)
		verification = &v
	}
	stopSampling()
	sampling.Wait()
	rep := agg.Report(o.Config, run, samples)
	rep.Verification = verification
	return rep, nil
}

// progress prints a line a second while a run goes.
type progress struct {
	w    io.Writer
	tty  bool
	stop func()
}

func newProgress(w io.Writer, tty bool, agg *Aggregator, run *Run) *progress {
	p := &progress{w: w, tty: tty, stop: func() {}}
	if w == nil {
		return p
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var prev uint64
		for {
			select {
			case <-done:
				if tty {
					fmt.Fprintln(w)
				}
				return
			case <-t.C:
			}
			n, by, late, p50, p99 := agg.Snapshot()
			line := fmt.Sprintf("%5.1fs  sent %d (%d/s)  admitted %d (+%d replays)  diverted %d  rejected %d  failed %d  p50 %v  p99 %v  late %d  dropped %d",
				time.Since(run.Start).Seconds(), n, n-prev, by[OutcomeAdmitted]-by["replayed"], by["replayed"], by[OutcomeDiverted], by[OutcomeRejected],
				by[OutcomeFailed], rd(p50), rd(p99), late, run.Dropped())
			prev = n
			if tty {
				fmt.Fprintf(w, "\r%s\x1b[K", line)
			} else {
				fmt.Fprintln(w, line)
			}
		}
	}()
	p.stop = func() { close(done); wg.Wait() }
	return p
}

// preflight checks the target and the sale before anything is sent: an
// unreachable gate or an unknown sale fails at once, not after the whole
// profile and the outcome check's wait. A sale that is not open is
// warned about, since the run would measure its refusals only.
func preflight(ctx context.Context, o Options) error {
	client := &http.Client{Timeout: 5 * time.Second}
	base := strings.TrimRight(o.Target, "/")
	st, err := getSale(ctx, client, base, o.Sale)
	var status *statusError
	switch {
	case errors.As(err, &status) && status.code == http.StatusNotFound:
		return fmt.Errorf("loadtest: %s has no sale %q (GET /v1/sales lists them)", o.Target, o.Sale)
	case err != nil:
		return fmt.Errorf("loadtest: cannot reach the gate at %s: %w", o.Target, err)
	}
	if st.State != "open" && o.Progress != nil {
		fmt.Fprintf(o.Progress, "warning: sale %s is %s: the run measures its refusals, and the check finds nothing admitted\n", o.Sale, st.State)
	}
	return nil
}
