package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

// ReadRoomReport reads a report that sluice loadtest --waiting-room
// --json wrote.
func ReadRoomReport(path string) (RoomReport, error) {
	f, err := os.Open(path)
	if err != nil {
		return RoomReport{}, fmt.Errorf("loadtest: merge: %w", err)
	}
	defer f.Close()
	var r RoomReport
	if err := json.NewDecoder(io.LimitReader(f, 4<<30)).Decode(&r); err != nil || r.Sale == "" {
		return RoomReport{}, fmt.Errorf("loadtest: merge: %s is not a report of sluice loadtest --waiting-room --json: %v", path, err)
	}
	return r, nil
}

// MergeOptions is the outcome check of a rehearsal run in shards.
type MergeOptions struct {
	// Target is the gate the check reads (the draw, the sale, the
	// orders); default the first report's. Any gate of the sale's
	// cluster answers the same.
	Target        string
	AllowRemote   bool
	VerifyTimeout time.Duration
}

// MergeRoomReports runs the outcome check of a rehearsal whose shards
// (--shard i/n, each with its --json report) ran apart: it puts their
// buyers' records together, as one run would have had them, sums their
// figures up and runs the whole check on the union (the draw, the
// positions, the passes, the orders). It needs every shard's report,
// each once.
func MergeRoomReports(ctx context.Context, o MergeOptions, reps []RoomReport) (RoomReport, error) {
	if err := shardsComplete(reps); err != nil {
		return RoomReport{}, err
	}
	if o.Target == "" {
		o.Target = reps[0].Target
	}
	if o.VerifyTimeout <= 0 {
		o.VerifyTimeout = 60 * time.Second
	}
	if err := CheckTarget(o.Target, o.AllowRemote); err != nil {
		return RoomReport{}, err
	}
	first := reps[0]
	rec := first.Records
	c := newCrowd(rec.Run, Shard{}, rec.Buyers, rec.Late, rec.Sybil, first.StartsAt, first.StartsAt)
	out := RoomReport{Target: o.Target, Sale: first.Sale, StartsAt: first.StartsAt, Abandon: first.Abandon}
	var eta etaErrors
	for k := range out.lat {
		out.lat[k] = newHist()
	}
	errs := errorCounts{}
	g := &out.Generator
	g.LateAfter = first.Generator.LateAfter
	heap := 0.0
	for _, r := range reps {
		e, lat, err := r.Records.unpack(c, *r.Shard)
		if err != nil {
			return RoomReport{}, fmt.Errorf("loadtest: merge: shard %s: %w", r.Shard, err)
		}
		eta.merge(e)
		for k := range lat {
			out.lat[k].Merge(lat[k])
		}
		for _, e := range r.Errors {
			errs.add(errorKey{request: e.Request, status: e.Status, reason: e.Reason, cause: e.Cause}, e.Count)
		}
		out.LapseCauses.add(r.LapseCauses)
		out.Stock = max(out.Stock, r.Stock)
		out.Polls += r.Polls
		out.LatePolls += r.LatePolls
		out.Duration = max(out.Duration, r.Duration)
		if r.SoldOutAfter > 0 && (out.SoldOutAfter == 0 || r.SoldOutAfter < out.SoldOutAfter) {
			out.SoldOutAfter = r.SoldOutAfter
		}
		g.Buyers += r.Generator.Buyers
		g.Connections += r.Generator.Connections
		g.Polls += r.Generator.Polls
		g.LatePolls += r.Generator.LatePolls
		g.PollsAfterStart += r.Generator.PollsAfterStart
		g.PollRateAfterStart += r.Generator.PollRateAfterStart // the shards ran at once
		g.CPUSeconds += r.Generator.CPUSeconds
		g.MaxRSS = max(g.MaxRSS, r.Generator.MaxRSS)
		heap += r.Generator.LiveHeapPerBuyer * float64(r.Generator.Buyers)
		out.Shards = append(out.Shards, r.Generator)
	}
	g.rates(out.Duration)
	if g.Buyers > 0 {
		g.LiveHeapPerBuyer = heap / float64(g.Buyers)
	}
	g.PollLatency, g.JoinLatency, g.OrderLatency = quantilesOf(out.lat[latPoll]), quantilesOf(out.lat[latJoin]), quantilesOf(out.lat[latOrder])
	out.Errors = errs.list()
	out.summarise(c, eta)
	if rec.Sybil > 0 {
		workers, proof := 0, false
		for _, r := range reps {
			if r.Sybil != nil {
				workers += r.Sybil.Workers
				proof = proof || r.Sybil.Proof
			}
		}
		out.Sybil = sybilReport(c, rec.Sybil, workers, proof, out.Stock, out.Joined)
	}
	base := strings.TrimRight(o.Target, "/")
	hc := &http.Client{Timeout: 15 * time.Second}
	out.readLine(ctx, hc, base)
	out.check(ctx, hc, base, c, o.VerifyTimeout)
	return out, nil
}

// shardsComplete says whether the reports are the shards of one
// rehearsal, every one of them once.
func shardsComplete(reps []RoomReport) error {
	if len(reps) == 0 {
		return fmt.Errorf("loadtest: merge: no reports")
	}
	first := reps[0]
	if first.Shard == nil || first.Records == nil {
		return fmt.Errorf("loadtest: merge: the first report is not a shard's (run each with --shard i/n --json)")
	}
	seen := make([]bool, first.Shard.of())
	for i, r := range reps {
		switch {
		case r.Shard == nil || r.Records == nil:
			return fmt.Errorf("loadtest: merge: report %d is not a shard's (run each with --shard i/n --json)", i+1)
		case r.Shard.Of != first.Shard.Of:
			return fmt.Errorf("loadtest: merge: shard %s and shard %s are of different splits", first.Shard, r.Shard)
		case r.Sale != first.Sale || !r.StartsAt.Equal(first.StartsAt) || r.Records.Run != first.Records.Run ||
			r.Records.Buyers != first.Records.Buyers || r.Records.Late != first.Records.Late || r.Records.Sybil != first.Records.Sybil:
			return fmt.Errorf("loadtest: merge: shard %s is of another rehearsal (sale %s starting %s, buyers %s) than shard %s (sale %s starting %s, buyers %s)",
				r.Shard, r.Sale, r.StartsAt.Format(time.RFC3339), r.Records.Run, first.Shard, first.Sale, first.StartsAt.Format(time.RFC3339), first.Records.Run)
		case r.Shard.Index < 0 || r.Shard.Index >= len(seen):
			return fmt.Errorf("loadtest: merge: shard %s", r.Shard)
		case seen[r.Shard.Index]:
			return fmt.Errorf("loadtest: merge: shard %s given twice", r.Shard)
		}
		seen[r.Shard.Index] = true
	}
	if i := slices.Index(seen, false); i >= 0 {
		return fmt.Errorf("loadtest: merge: shard %s is missing: the check needs every shard's report", Shard{Index: i, Of: len(seen)})
	}
	return nil
}
