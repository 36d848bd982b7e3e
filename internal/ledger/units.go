package ledger

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// unitSet is a set of units: bit k-1 holds unit k.
type unitSet []uint64

func (b unitSet) has(k int64) bool {
	i := k - 1
	w := i / 64
	return k >= 1 && w < int64(len(b)) && b[w]&(1<<(i%64)) != 0
}

func (b *unitSet) add(k int64) {
	i := k - 1
	w := i / 64
	for int64(len(*b)) <= w {
		*b = append(*b, 0)
	}
	(*b)[w] |= 1 << (i % 64)
}

func (b unitSet) remove(k int64) {
	i := k - 1
	if w := i / 64; k >= 1 && w < int64(len(b)) {
		b[w] &^= 1 << (i % 64)
	}
}

// upTo counts the units of 1..hi in the set.
func (b unitSet) upTo(hi int64) int64 {
	var n int
	full := hi / 64
	for w := int64(0); w < full && w < int64(len(b)); w++ {
		n += bits.OnesCount64(b[w])
	}
	if r := hi % 64; r > 0 && full < int64(len(b)) {
		n += bits.OnesCount64(b[full] & (1<<r - 1))
	}
	return int64(n)
}

func (b unitSet) word(w int64) uint64 {
	if w < int64(len(b)) {
		return b[w]
	}
	return 0
}

// variantUnits is what a ledger knows of one variant's units: which
// orders and burns hold (read from the sale's stream, or stored by this
// ledger), and which a Place of this ledger is publishing now.
type variantUnits struct {
	taken  unitSet // held by an order or a burn
	burned unitSet // held by a burn (a subset of taken)
	// foreign are taken units this ledger learnt of from a duplicate
	// answer, not yet read from the stream: held, by an order or a burn
	// (a subset of taken, counted in neither orders nor burns).
	foreign unitSet
	held    unitSet // being published by this ledger, or published with an unknown outcome
	doubt   unitSet // published with an unknown outcome (a subset of held)
	orders  int64   // units orders hold
	burns   int64   // units burns hold
	cursor  int64   // where reserve looks first; 0 before the first
}

// reserve picks a unit of 1..hi that nothing is known to hold and marks
// it held: from a cursor that starts at a random unit, so that gates
// sharing a sale start apart and seldom pick the same one. Units whose
// publish had an unknown outcome come last.
func (u *variantUnits) reserve(hi int64) (int64, bool) {
	if hi < 1 {
		return 0, false
	}
	if u.cursor < 1 || u.cursor > hi {
		u.cursor = 1 + rand.Int64N(hi) // which unit an order takes changes nobody's chance
	}
	if k, ok := u.scan(u.cursor, hi); ok {
		u.held.add(k)
		u.cursor = k + 1
		return k, true
	}
	if k, ok := u.scan(1, u.cursor-1); ok {
		u.held.add(k)
		u.cursor = k + 1
		return k, true
	}
	// Only units whose outcome is unknown: try one again (JetStream
	// says duplicate if its first publish was stored).
	for w := int64(0); w < int64(len(u.doubt)) && w*64 < hi; w++ {
		if d := u.doubt[w] &^ u.taken.word(w); d != 0 {
			k := w*64 + int64(bits.TrailingZeros64(d)) + 1
			if k <= hi {
				u.doubt.remove(k)
				return k, true
			}
		}
	}
	return 0, false
}

// scan finds the first unit of from..to that is neither taken nor held.
func (u *variantUnits) scan(from, to int64) (int64, bool) {
	for k := from; k <= to; {
		i := k - 1
		w, off := i/64, uint(i%64)
		free := ^(u.taken.word(w) | u.held.word(w)) >> off
		if free != 0 {
			if c := k + int64(bits.TrailingZeros64(free)); c <= to {
				return c, true
			}
			return 0, false
		}
		k += int64(64 - off)
	}
	return 0, false
}

// take records that an order (burn false) or a burn holds unit k.
func (u *variantUnits) take(k int64, burn bool) {
	u.held.remove(k)
	u.doubt.remove(k)
	if u.taken.has(k) && !u.foreign.has(k) {
		return
	}
	u.foreign.remove(k)
	u.taken.add(k)
	if burn {
		u.burned.add(k)
		u.burns++
	} else {
		u.orders++
	}
}

// takenByAnother records that something holds unit k, as a duplicate
// answer says: what, the stream tells when it is read (take).
func (u *variantUnits) takenByAnother(k int64) {
	u.held.remove(k)
	u.doubt.remove(k)
	if !u.taken.has(k) {
		u.taken.add(k)
		u.foreign.add(k)
	}
}

// beyond is the first unit above hi that nothing is known to hold, for
// a burn of the units to come.
func (u *variantUnits) beyond(hi int64) int64 {
	k, _ := u.scan(hi+1, math.MaxInt64/2)
	return k
}

// release forgets a reservation whose publish stored nothing.
func (u *variantUnits) release(k int64) {
	u.held.remove(k)
	u.doubt.remove(k)
}

// unsure keeps unit k held: its publish's outcome is unknown.
func (u *variantUnits) unsure(k int64) { u.doubt.add(k) }

// left is how many more orders the variant takes with hi units: the
// units of 1..hi nothing holds, less the burns beyond hi (a lowering
// below what was sold burns the units to come: see EnsureSale).
func (u *variantUnits) left(hi int64) int64 {
	free := hi - u.taken.upTo(hi)
	return max(0, free-(u.burns-u.burned.upTo(hi)))
}

// unitBook is what a ledger has read of a sale with variants' stream: the
// units of each variant. A catch-up reads the stream on up to a
// sequence; Place, the states and StockLeft catch it up.
type unitBook struct {
	sale  string
	burns string     // the subjects' prefix of the sale's burns (IsBurn)
	io    sync.Mutex // one catch-up at a time
	cons  jetstream.Consumer

	mu   sync.Mutex
	next uint64 // the first stream sequence not read
	vars map[string]*variantUnits
	// cfg and units are the sale and its units as last read from the
	// stream's configuration (a refresh, EnsureSale): the order path
	// reads them here, parsed once.
	cfg   Sale
	units map[string]int64
}

// config is the sale and its units as last read; ok false before the
// first read.
func (b *unitBook) config() (Sale, map[string]int64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cfg, b.units, b.units != nil
}

// setConfig notes the stream's configuration, when it is a sale with
// variants. Units only grow: a read older than one noted keeps the
// larger units.
func (b *unitBook) setConfig(cfg jetstream.StreamConfig) {
	s, units, ok := variantsOf(cfg)
	if !ok {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for v, n := range b.units {
		units[v] = max(units[v], n)
	}
	b.cfg, b.units = s, units
}

func (b *unitBook) variant(v string) *variantUnits {
	u := b.vars[v]
	if u == nil {
		u = &variantUnits{}
		b.vars[v] = u
	}
	return u
}

// book returns the sale's unit book, made on first use.
func (l *Ledger) book(sale string) *unitBook {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.books[sale]
	if b == nil {
		b = &unitBook{sale: sale, burns: StockSubjectPrefix(sale), next: 1, vars: map[string]*variantUnits{}}
		l.books[sale] = b
	}
	return b
}

// catchUpBatch is the most messages one Fetch of a catch-up asks for.
// Each Fetch of an ordered consumer makes its consumer again on the
// server (about a millisecond of CPU), and a gate's book is caught up
// every refresh (250 ms): at 8,000 admits/s that is 2,000 messages, one
// Fetch at this size where 512 took four. Whole messages (at most
// MaxMsgSize, 4 KiB) bound what one Fetch holds to 8 MiB.
const catchUpBatch = 2048

// catchUp reads the sale's stream into its book up to sequence upTo.
func (l *Ledger) catchUp(ctx context.Context, b *unitBook, upTo uint64) error {
	b.io.Lock()
	defer b.io.Unlock()
	for {
		b.mu.Lock()
		next := b.next
		b.mu.Unlock()
		if next > upTo {
			return nil
		}
		if b.cons == nil {
			// Every message (orders and burns): a filter would make
			// JetStream count the consumer's pending by walking every
			// buyer's subject, at each catch-up. Whole messages, though
			// only the id and subject are read: a headers-only consumer
			// makes the server copy each message's headers anew, which
			// costs it more than sending an order's few hundred bytes
			// (BenchmarkVariantFollow: 9.9 µs of CPU a message headers
			// only, 9.2 whole).
			cons, err := l.js.OrderedConsumer(ctx, StreamName(b.sale), jetstream.OrderedConsumerConfig{
				DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
				OptStartSeq:   next,
			})
			if err != nil {
				return fmt.Errorf("%w: read the units of %s: %w", ErrUnavailable, b.sale, err)
			}
			b.cons = cons
		}
		// One Fetch for what is behind, up to catchUpBatch: each Fetch of
		// an ordered consumer makes its consumer again on the server.
		batch, err := b.cons.Fetch(int(min(catchUpBatch, upTo-next+1)), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			b.cons = nil // made again from where the book is
			return fmt.Errorf("%w: read the units of %s: %w", ErrUnavailable, b.sale, err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			l.applyUnit(b, msg)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			b.cons = nil
			return fmt.Errorf("%w: read the units of %s: %w", ErrUnavailable, b.sale, err)
		}
		if n == 0 {
			b.cons = nil
			if err := ctx.Err(); err != nil {
				return err
			}
			return fmt.Errorf("%w: read the units of %s: nothing delivered before sequence %d", ErrUnavailable, b.sale, upTo)
		}
	}
}

// applyUnit records the unit one message of the stream holds.
func (l *Ledger) applyUnit(b *unitBook, msg jetstream.Msg) {
	seq, ok := ackStreamSeq(msg.Reply())
	if !ok {
		meta, err := msg.Metadata()
		if err != nil {
			return
		}
		seq = meta.Sequence.Stream
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if seq < b.next {
		return // read before: a consumer made again may repeat some
	}
	b.next = seq + 1
	v, k, ok := parseUnitID(msg.Headers().Get(jetstream.MsgIDHeader))
	if !ok {
		return
	}
	b.variant(v).take(k, strings.HasPrefix(msg.Subject(), b.burns))
}

// ackStreamSeq is the stream sequence in a consumer's message's reply
// subject, "$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.…" (9
// tokens), or with a domain and an account hash after "$JS.ACK." (11, or
// 12 with a random token at the end), as jetstream.Msg.Metadata reads
// it, without its allocations: the follower reads one a message.
func ackStreamSeq(reply string) (uint64, bool) {
	rest, found := strings.CutPrefix(reply, "$JS.ACK.")
	if !found {
		return 0, false
	}
	var pos int // of the stream sequence, among rest's tokens
	switch strings.Count(rest, ".") + 1 {
	case 7:
		pos = 3
	case 9, 10:
		pos = 5
	default:
		return 0, false
	}
	for range pos {
		i := strings.IndexByte(rest, '.')
		rest = rest[i+1:]
	}
	if i := strings.IndexByte(rest, '.'); i >= 0 {
		rest = rest[:i]
	}
	seq, err := strconv.ParseUint(rest, 10, 64)
	return seq, err == nil
}

// catchUpNow catches the book up to the stream's last sequence now.
func (l *Ledger) catchUpNow(ctx context.Context, b *unitBook, str jetstream.Stream) error {
	info, err := str.Info(ctx)
	if err != nil {
		return fmt.Errorf("%w: read the sale's stream: %w", ErrUnavailable, err)
	}
	return l.catchUp(ctx, b, info.State.LastSeq)
}
