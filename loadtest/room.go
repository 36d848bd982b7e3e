package loadtest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// RoomOptions is a waiting-room rehearsal: buyers join a sale's line
// before its start, poll their ticket as it says, and order with their
// pass when their turn comes.
type RoomOptions struct {
	Target, Sale string
	// Buyers join during the Before that ends at the sale's start, at
	// random times; Late more join during the second after it.
	Buyers, Late int
	Before       time.Duration
	// Connections bounds the requests in flight: the workers, each with
	// one request at a time and a keep-alive connection of its own for
	// its polls; joins and orders share a pool of as many.
	Connections int
	// MaxDuration bounds the whole run; default: until the start plus 2 minutes.
	MaxDuration time.Duration
	// VerifyTimeout bounds the wait for the drain before the check.
	VerifyTimeout time.Duration
	// Timeout bounds one request; default 15 s.
	Timeout time.Duration
	// LateAfter: a poll sent later than this after the time the gate
	// gave (poll_after_seconds) counts as late; default 1 s.
	LateAfter   time.Duration
	AllowRemote bool
	// Seed makes the buyers' join times and who leaves; 0: one made of
	// the sale and its start, the same in every shard.
	Seed uint64
	// Progress, if set, gets a line a second.
	Progress io.Writer
	// Sybil is an attacker: one client joining this many ids from the
	// line's opening (the window's start) until the start, SybilWorkers
	// at once (default 1: one core), solving proofs when the sale asks.
	Sybil, SybilWorkers int
	// Abandon is the share of joiners (0 to 1) who never come back
	// after the start: they close the tab once they have a ticket, and
	// their turns lapse.
	Abandon float64
	// HeapProfile, if set, gets the generator's heap profile (pprof) at
	// the sale's start, once the early buyers joined, after a
	// collection: what the crowd itself costs.
	HeapProfile io.Writer
	// Variants, for a sale with variants: what its buyers choose and how
	// often (ParseVariants). A buyer orders the variant of their choice
	// with their pass and, told variant_sold_out, another of those left
	// with the same pass, as a person would.
	Variants []VariantWeight
	// Shard, when Of > 1, simulates only this share of the buyers; the
	// report then carries their records and no outcome check, which
	// MergeRoomReports runs on the union of the shards' reports.
	Shard Shard
}

// roomSale is GET /v1/sales/{sale} with its waiting room.
type roomSale struct {
	saleState
	StartsAt time.Time `json:"starts_at"`
	Room     *struct {
		LineOpensAt time.Time `json:"line_opens_at"`
		PassTTL     float64   `json:"pass_ttl_seconds"`
		LetIn       int64     `json:"let_in"`
		Offered     int64     `json:"offered"`
		Drawn       int64     `json:"drawn_tickets"`
		Outstanding int64     `json:"passes_outstanding"`
		LineLimit   int64     `json:"line_limit"`
		LineLength  int64     `json:"line_length"`
		JoinProof   string    `json:"join_proof"`
		Challenge   string    `json:"challenge_url"`
	} `json:"waiting_room"`
}

func (o *RoomOptions) defaults() error {
	if err := CheckTarget(o.Target, o.AllowRemote); err != nil {
		return err
	}
	switch {
	case o.Buyers <= 0:
		return errors.New("loadtest: --waiting-room needs --buyers > 0")
	case o.Abandon < 0 || o.Abandon >= 1 || math.IsNaN(o.Abandon):
		return errors.New("loadtest: --abandon is a share from 0 to below 1")
	case o.Buyers+o.Late+o.Sybil > math.MaxInt32:
		return errors.New("loadtest: at most 2^31 buyers")
	case o.Shard.Of > 1 && (o.Shard.Index < 0 || o.Shard.Index >= o.Shard.Of):
		return fmt.Errorf("loadtest: shard %d of %d", o.Shard.Index+1, o.Shard.Of)
	}
	if o.Connections <= 0 {
		o.Connections = 256
	}
	if o.VerifyTimeout <= 0 {
		o.VerifyTimeout = 60 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Second
	}
	if o.LateAfter <= 0 {
		o.LateAfter = time.Second
	}
	o.SybilWorkers = max(1, o.SybilWorkers)
	return nil
}

// openRoom reads the sale and checks that a rehearsal can run: it has a
// waiting room whose line is open and whose start is ahead.
func openRoom(ctx context.Context, c *http.Client, base, sale string) (roomSale, error) {
	var s roomSale
	if err := getJSON(ctx, c, base+"/v1/sales/"+url.PathEscape(sale), &s); err != nil {
		return s, fmt.Errorf("loadtest: sale %s at %s: %w", sale, base, err)
	}
	now := time.Now()
	switch {
	case s.Room == nil:
		return s, fmt.Errorf("loadtest: sale %s has no waiting room (PATCH it with \"waiting_room\": true)", sale)
	case s.StartsAt.IsZero() || !s.StartsAt.After(now.Add(time.Second)):
		return s, fmt.Errorf("loadtest: sale %s must start in the future (at least a second from now) for buyers to join before it", sale)
	case now.Before(s.Room.LineOpensAt):
		return s, fmt.Errorf("loadtest: the line of %s opens at %s", sale, s.Room.LineOpensAt.Format(time.RFC3339))
	}
	return s, nil
}

// RehearseRoom runs a waiting-room rehearsal against a sale whose line is
// open and whose start is ahead, and checks the outcome; in a shard
// (o.Shard) it runs its share and leaves the check to
// MergeRoomReports. The phases: the buyers are planned, then join
// during the window before the start, poll and claim their turns after
// it and order with their passes, all in one crowdRun; then the report
// and the check.
func RehearseRoom(ctx context.Context, o RoomOptions) (RoomReport, error) {
	if err := o.defaults(); err != nil {
		return RoomReport{}, err
	}
	base := strings.TrimRight(o.Target, "/")
	hc := &http.Client{Timeout: o.Timeout}
	sale, err := openRoom(ctx, hc, base, o.Sale)
	if err != nil {
		return RoomReport{}, err
	}
	if o.MaxDuration <= 0 {
		o.MaxDuration = time.Until(sale.StartsAt) + 2*time.Minute
	}
	started, cpu0 := time.Now(), processCPU()
	r, err := planRoom(o, base, sale, started)
	if err != nil {
		return RoomReport{}, err
	}
	r.http = hc
	runCtx, cancel := context.WithTimeout(ctx, o.MaxDuration)
	r.run(runCtx)
	cancel()
	rep := newRoomReport(o, sale, r, time.Since(started), processCPU()-cpu0)
	rep.readLine(ctx, hc, base)
	if o.Shard.Of > 1 {
		rep.Shard = &o.Shard
		rep.Records = recordsOf(r.c, rep.eta, r.st)
		return rep, nil
	}
	rep.check(ctx, hc, base, r.c, o.VerifyTimeout)
	return rep, nil
}

// planRoom plans the crowd: each buyer's id, join time and whether it
// leaves, from its global index and the seed (the same in every shard);
// the early ones over the window before the start, ending a little
// before it so that every join lands before the draw's mark, the late
// ones in the second after the start, the attacker's at the window's
// start.
func planRoom(o RoomOptions, base string, sale roomSale, now time.Time) (*crowdRun, error) {
	winEnd := sale.StartsAt.Add(-300 * time.Millisecond)
	winStart := sale.StartsAt.Add(-o.Before)
	if o.Before <= 0 || winStart.Before(now) {
		winStart = now
	}
	if !winEnd.After(winStart) {
		winEnd = winStart.Add(time.Millisecond)
	}
	seed := o.Seed
	if seed == 0 {
		sum := sha256.Sum256([]byte(sale.StartsAt.UTC().Format(time.RFC3339Nano) + "\x00" + o.Sale))
		seed = binary.LittleEndian.Uint64(sum[:])
	}
	c := newCrowd(runTag(o.Sale, sale.StartsAt, seed), o.Shard, o.Buyers, o.Late, o.Sybil, now, sale.StartsAt)
	span := float64(winEnd.Sub(winStart))
	for i := range c.buyers {
		b, g := &c.buyers[i], c.global(uint32(i))
		switch {
		case b.is(fSybil):
			b.joinAt = c.ms(winStart)
		case b.is(fLate):
			b.joinAt = c.ms(sale.StartsAt.Add(200*time.Millisecond + time.Duration(unit(seed, g, 0)*float64(time.Second))))
		default:
			b.joinAt = c.ms(winStart.Add(time.Duration(unit(seed, g, 0) * span)))
		}
		if !b.is(fSybil) && o.Abandon > 0 && unit(seed, g, 1) < o.Abandon {
			b.flags |= fAbsent
		}
		b.due = b.joinAt
	}
	client, err := newCrowdClient(o.Target, o.Connections+o.SybilWorkers, o.Timeout)
	if err != nil {
		return nil, err
	}
	host, path, err := hostAndPath(o.Target)
	if err != nil {
		return nil, err
	}
	r := &crowdRun{c: c, client: client, sale: o.Sale, base: base,
		lineURL:      base + "/v1/sales/" + url.PathEscape(o.Sale) + "/line",
		challengeURL: base + sale.Room.Challenge, ticketsPath: path + "/v1/tickets/", host: host, tls: strings.HasPrefix(o.Target, "https:"),
		ttl: time.Duration(sale.Room.PassTTL * float64(time.Second)), proof: sale.Room.JoinProof != "",
		winStart: c.ms(winStart), winEnd: c.ms(winEnd), lateAfter: o.LateAfter, timeout: o.Timeout,
		workers: o.Connections, sybils: o.SybilWorkers, progress: o.Progress, heapProfile: o.HeapProfile, st: newCrowdStats(),
		variants: o.Variants, seed: seed}
	return r, nil
}
