package loadtest

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"
)

// A crowd is the buyers a waiting-room rehearsal simulates: each one a
// record of a few dozen bytes (its ticket as bytes, its positions, what
// it does next and when, its times as milliseconds), moved along by a
// timer wheel and a fixed pool of workers rather than a goroutine and an
// HTTP client state of its own. A million buyers fit in some 60 MB.

// noTime marks a time a buyer does not have (no turn).
const noTime = math.MinInt32

// step is what a buyer does next.
type step uint8

const (
	stepJoin step = iota // join the line (at its join time)
	stepPoll             // ask for its ticket (when the gate said)
	stepDone             // it has its outcome
)

// buyerFlags are what is known of a buyer, as bits.
type buyerFlags uint16

const (
	fLate       buyerFlags = 1 << iota // joins after the start
	fAbsent                            // leaves once it holds a ticket
	fSybil                             // one of the attacker's ids
	fTicket                            // holds a ticket
	fDrawn                             // its ticket is in the draw
	fServed                            // its order was answered 202 (or 201)
	fOddTicket                         // its ticket id is kept in crowd.odd
	fFailed                            // its last poll failed
	fLapsed                            // its last answer: the turn lapsed, not yet back in line
	fLapseSeen                         // the lapse of its first turn is counted
	fLapseSeen2                        // the lapse of its turn at the back is counted
	fRejoined                          // it went to the back of the line after a lapse
	fTurn                              // it got its turn (turnAt is set)
	fSlipped                           // a poll of its after the start failed, or came more than LateAfter after its time
)

// buyer is one simulated buyer. Its times are milliseconds from the
// crowd's epoch. One goroutine at a time touches it: the worker that
// holds it (handed over through the wheel and the work channel).
type buyer struct {
	ticket    [16]byte // the ticket id's 128 bits
	position  uint32   // its place in the draw, from its first answer after it; 0 unknown
	current   uint32   // its place as its last answer gave it (at the back after a lapse)
	joinAt    int32    // planned, then when its join left
	due       int32    // when its next step is due
	turnAt    int32    // its turn: the pass's expiry less the pass's lifetime; noTime if none
	proofUS   uint32   // the CPU its proof of work took, µs
	pollAfter uint16   // seconds, as the gate last said
	outcome   uint16   // its outcome's code in crowd.names; 0 none yet
	flags     buyerFlags
	step      step
}

func (b *buyer) is(f buyerFlags) bool { return b.flags&f != 0 }

// Shard is a share of a rehearsal's buyers (--shard i/n): buyer g (of
// every buyer, sybil ids last) belongs to shard g mod Of, so that every
// shard has its share of early, late and absent buyers, and a buyer's id
// and join time are the same whichever process simulates it. The zero
// value is the whole crowd.
type Shard struct {
	Index int `json:"index"` // 0-based
	Of    int `json:"of"`
}

// ParseShard reads "i/n", 1 ≤ i ≤ n (the i-th of n shares).
func ParseShard(s string) (Shard, error) {
	var i, n int
	if _, err := fmt.Sscanf(s, "%d/%d", &i, &n); err != nil || fmt.Sprintf("%d/%d", i, n) != s || n < 1 || i < 1 || i > n || n > 1024 {
		return Shard{}, fmt.Errorf("loadtest: --shard %q: want i/n, 1 ≤ i ≤ n ≤ 1024 (2/3: the second of three shares)", s)
	}
	return Shard{Index: i - 1, Of: n}, nil
}

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index+1, s.of()) }

func (s Shard) of() int { return max(1, s.Of) }

// count is how many of total buyers fall in the shard.
func (s Shard) count(total int) int {
	if total <= s.Index {
		return 0
	}
	return (total-s.Index-1)/s.of() + 1
}

// crowd is the buyers of a rehearsal (or of one shard of it) and what
// is kept of them apart from their records.
type crowd struct {
	run   string // the tag of the buyer ids
	shard Shard
	// honest, late and sybil count the buyers of the whole rehearsal:
	// global ids 0..honest-1 join before the start, the next late ones
	// after it, then the attacker's.
	honest, late, sybil int
	buyers              []buyer // this shard's, by local index
	// epoch is what the buyers' times count from; startMs is the sale's
	// start on that scale.
	epoch   time.Time
	startMs int32
	names   *outcomeNames

	mu     sync.Mutex
	orders map[uint32]string // order ids of the buyers served
	// chose are the variants of the orders of the buyers served, in a
	// sale with variants.
	chose map[uint32]string
	odd   map[uint32]string // ticket ids that are not 26 base32 characters
}

func newCrowd(run string, shard Shard, honest, late, sybil int, epoch time.Time, startsAt time.Time) *crowd {
	c := &crowd{run: run, shard: shard, honest: honest, late: late, sybil: sybil, epoch: epoch,
		names: newOutcomeNames(), orders: map[uint32]string{}, chose: map[uint32]string{}, odd: map[uint32]string{}}
	c.startMs = c.ms(startsAt)
	c.buyers = make([]buyer, shard.count(honest+late+sybil))
	for i := range c.buyers {
		c.buyers[i].turnAt = noTime
		switch g := c.global(uint32(i)); {
		case g >= honest+late:
			c.buyers[i].flags |= fSybil
		case g >= honest:
			c.buyers[i].flags |= fLate
		}
	}
	return c
}

// global is the buyer's index in the whole rehearsal.
func (c *crowd) global(l uint32) int { return c.shard.Index + int(l)*c.shard.of() }

// ms is t on the crowd's scale, clamped to what an int32 holds.
func (c *crowd) ms(t time.Time) int32 {
	d := t.Sub(c.epoch) / time.Millisecond
	return int32(max(math.MinInt32+1, min(math.MaxInt32, d)))
}

// time is a time on the crowd's scale.
func (c *crowd) time(ms int32) time.Time { return c.epoch.Add(time.Duration(ms) * time.Millisecond) }

// sinceStart is a time on the crowd's scale in seconds from the start.
func (c *crowd) sinceStart(ms int32) float64 { return float64(ms-c.startMs) / 1000 }

// appendID appends the buyer's id: wr-RUN-G for a buyer, sybil-RUN-K for
// the attacker's K-th id.
func (c *crowd) appendID(dst []byte, l uint32) []byte {
	g := c.global(l)
	if g >= c.honest+c.late {
		dst = append(dst, "sybil-"...)
		g -= c.honest + c.late
	} else {
		dst = append(dst, "wr-"...)
	}
	dst = append(dst, c.run...)
	dst = append(dst, '-')
	return strconv.AppendInt(dst, int64(g), 10)
}

func (c *crowd) id(l uint32) string { return string(c.appendID(nil, l)) }

// ticketEncoding writes ticket ids as the gate does: 128 bits in
// lowercase base32 without padding (its API's ^[a-z2-7]{26}$).
var ticketEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

const ticketIDLen = 26

// setTicket keeps the ticket id: as its 16 bytes when it spells them one
// way only, in the odd map otherwise (a gate of another make).
func (c *crowd) setTicket(l uint32, id []byte) {
	b := &c.buyers[l]
	b.flags |= fTicket
	if len(id) == ticketIDLen {
		var k [16]byte
		var back [ticketIDLen]byte
		if n, err := ticketEncoding.Decode(k[:], id); err == nil && n == len(k) {
			ticketEncoding.Encode(back[:], k[:])
			if string(back[:]) == string(id) {
				b.ticket = k
				return
			}
		}
	}
	b.flags |= fOddTicket
	c.mu.Lock()
	c.odd[l] = string(id)
	c.mu.Unlock()
}

// appendTicket appends the buyer's ticket id.
func (c *crowd) appendTicket(dst []byte, l uint32) []byte {
	b := &c.buyers[l]
	if b.is(fOddTicket) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return append(dst, c.odd[l]...)
	}
	var s [ticketIDLen]byte
	ticketEncoding.Encode(s[:], b.ticket[:])
	return append(dst, s[:]...)
}

func (c *crowd) ticket(l uint32) string {
	if !c.buyers[l].is(fTicket) {
		return ""
	}
	return string(c.appendTicket(nil, l))
}

// ticketHash is the ticket's public identity, SHA-256 of its id (the
// draw lists these).
func (c *crowd) ticketHash(l uint32) [32]byte {
	var s [64]byte
	return sha256.Sum256(c.appendTicket(s[:0], l))
}

func (c *crowd) setOrder(l uint32, id, variant string) {
	c.mu.Lock()
	c.orders[l] = id
	if variant != "" {
		c.chose[l] = variant
	}
	c.mu.Unlock()
}

// variant is the variant of the buyer's order ("" without variants).
func (c *crowd) variant(l uint32) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.chose[l]
}

func (c *crowd) order(l uint32) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.orders[l]
}

// runTag names a rehearsal's buyers: the same for every shard of it
// (they read the same sale and start), another for another start.
func runTag(sale string, startsAt time.Time, seed uint64) string {
	h := sha256.New()
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:], uint64(startsAt.UnixNano()))
	binary.LittleEndian.PutUint64(b[8:], seed)
	h.Write([]byte(sale))
	h.Write(b[:])
	return fmt.Sprintf("%x", h.Sum(nil)[:4])
}

// mix64 is SplitMix64's finaliser: a buyer's random draws come from its
// global index and the seed, the same in every shard.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// unit is a uniform draw in [0, 1) for buyer g's k-th choice.
func unit(seed uint64, g int, k uint64) float64 {
	return float64(mix64(seed^mix64(uint64(g)*4+k))>>11) / (1 << 53)
}

// outcomeNames are the outcomes buyers end with, by code: a fixed few
// and those made of an answer (join_410, order_sold_out…). Safe for
// concurrent use.
type outcomeNames struct {
	mu    sync.Mutex
	list  []string
	index map[string]uint16
}

// The outcomes known in advance, by code.
const (
	oNone uint16 = iota
	oServed
	oSoldOut
	oAbsent
	oLapsed
	oNotJoined
	oProofError
	oOrderError
	oStillWaiting
)

func newOutcomeNames() *outcomeNames {
	n := &outcomeNames{index: map[string]uint16{}}
	for _, s := range []string{"", "served", "sold_out", "absent", "lapsed", "not_joined", "proof_error", "order_error", "still_waiting"} {
		n.code(s)
	}
	return n
}

// maxOutcomes bounds the outcomes kept apart; the rest are "other".
const maxOutcomes = 1024

// code is the outcome's code, made on first use.
func (n *outcomeNames) code(s string) uint16 {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c, ok := n.index[s]; ok {
		return c
	}
	if len(n.list) >= maxOutcomes {
		s = "other"
		if c, ok := n.index[s]; ok {
			return c
		}
	}
	c := uint16(len(n.list))
	n.list = append(n.list, s)
	n.index[s] = c
	return c
}

// lookup is the outcome's code, if a buyer had it.
func (n *outcomeNames) lookup(s string) (uint16, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, ok := n.index[s]
	return c, ok
}

func (n *outcomeNames) name(c uint16) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if int(c) < len(n.list) {
		return n.list[c]
	}
	return "other"
}
