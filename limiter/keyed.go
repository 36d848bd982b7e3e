package limiter

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// shardCount spreads the keys over locks; it decides nothing else: the
// generations and the bound are counted over the whole set.
const shardCount = 64

// Keyed is a set of token buckets, one per key, all with the same rate and
// burst, holding at most a bounded number of keys.
//
// Keys live in two generations. A generation takes in Cap()/2 keys or lasts
// the idle time, whichever comes first, counted over the whole set; then it
// becomes the older generation and the older one is dropped. A key asked
// for again moves into the current generation, keeping its bucket.
//
// What an active key is promised, exactly and however the keys hash: a key
// asked for again before more than Cap()/2 other keys have been asked for
// since its last request, and less than the idle time after it (on a clock
// that does not go back), still has its bucket. A key nobody asks for is
// forgotten two generations later, so the memory held is bounded whatever
// the number of keys offered: at most Cap() keys, and for the moment a
// rotation takes to visit the shards, the generation it drops. A forgotten
// key starts again with a full bucket, which is what an idle key would have
// by then anyway; under a flood of fresh keys the per-sale limit, not this
// one, is the hard bound.
//
// A nil *Keyed allows everything. Keyed is safe for concurrent use and
// never blocks beyond a short critical section.
type Keyed[K comparable] struct {
	limit  rate.Limit
	burst  int
	perGen int
	idle   time.Duration
	seed   maphash.Seed

	// gen is the current generation, read without genMu by the shards
	// catching up; it changes only under genMu.
	gen   atomic.Uint64
	genMu sync.Mutex
	count int       // keys that joined the current generation
	start time.Time // when it began

	shards  [shardCount]shard[K]
	evicted atomic.Uint64
}

type shard[K comparable] struct {
	mu   sync.Mutex
	gen  uint64              // the generation of cur; prev is the one before
	cur  map[K]*rate.Limiter // nil until a key joins
	prev map[K]*rate.Limiter
}

// NewKeyed returns buckets of limit tokens per second and burst, keeping at
// most maxKeys keys (at least two) and forgetting keys idle for about
// idle (zero means a minute). A limit of zero or rate.Inf returns nil,
// which allows everything.
func NewKeyed[K comparable](limit rate.Limit, burst, maxKeys int, idle time.Duration) *Keyed[K] {
	if limit <= 0 || limit == rate.Inf {
		return nil
	}
	if burst < 1 {
		burst = 1
	}
	if idle <= 0 {
		idle = time.Minute
	}
	return &Keyed[K]{limit: limit, burst: burst, perGen: max(maxKeys/2, 1), idle: idle, seed: maphash.MakeSeed()}
}

// Allow is AllowAt(time.Now(), key).
func (k *Keyed[K]) Allow(key K) bool { return k.AllowAt(time.Now(), key) }

// AllowAt reports whether key may have one token at t, and takes it.
func (k *Keyed[K]) AllowAt(t time.Time, key K) bool {
	if k == nil {
		return true
	}
	s := &k.shards[k.shardOf(key)]
	s.mu.Lock()
	k.catchUp(s, k.gen.Load())
	l, ok := s.cur[key]
	rotated := false
	if !ok {
		// Take a returning key out of the older generation before its
		// arrival can rotate the generations: an active key keeps its
		// bucket.
		if l, ok = s.prev[key]; ok {
			delete(s.prev, key)
		} else {
			l = rate.NewLimiter(k.limit, k.burst)
		}
		var g uint64
		g, rotated = k.join(t)
		k.catchUp(s, g)
		if s.cur == nil {
			s.cur = make(map[K]*rate.Limiter)
		}
		s.cur[key] = l
	}
	allowed := l.AllowN(t, 1)
	s.mu.Unlock()
	if rotated {
		k.sweep()
	}
	return allowed
}

func (k *Keyed[K]) shardOf(key K) uint64 {
	return maphash.Comparable(k.seed, key) % shardCount
}

// join counts one key into the current generation, starting a new one
// first when the current one is full or old, and returns the generation
// the key belongs to and whether it started it.
func (k *Keyed[K]) join(t time.Time) (gen uint64, rotated bool) {
	k.genMu.Lock()
	defer k.genMu.Unlock()
	if k.start.IsZero() {
		k.start = t
	}
	if k.count < k.perGen && t.Sub(k.start) < k.idle {
		k.count++
		return k.gen.Load(), false
	}
	gen = k.gen.Load() + 1
	k.gen.Store(gen)
	k.count, k.start = 1, t
	return gen, true
}

// catchUp brings a shard (locked) to generation g: one generation on, its
// current keys become the older ones; further, it holds none.
func (k *Keyed[K]) catchUp(s *shard[K], g uint64) {
	if s.gen >= g {
		return
	}
	dropped := len(s.prev)
	if s.gen+1 == g {
		s.prev = s.cur
	} else {
		dropped += len(s.cur)
		s.prev = nil
	}
	s.cur = nil
	s.gen = g
	k.evicted.Add(uint64(dropped))
}

// sweep brings every shard to the current generation, so that the
// generation a rotation drops is freed everywhere, not only where keys
// arrive.
func (k *Keyed[K]) sweep() {
	for i := range k.shards {
		s := &k.shards[i]
		s.mu.Lock()
		k.catchUp(s, k.gen.Load())
		s.mu.Unlock()
	}
}

// Len returns the number of keys held.
func (k *Keyed[K]) Len() int {
	if k == nil {
		return 0
	}
	n := 0
	for i := range k.shards {
		s := &k.shards[i]
		s.mu.Lock()
		n += len(s.cur) + len(s.prev)
		s.mu.Unlock()
	}
	return n
}

// Cap returns the most keys the set holds (see Keyed for the moment of a
// rotation); the promise to an active key is stated in terms of it.
func (k *Keyed[K]) Cap() int {
	if k == nil {
		return 0
	}
	return 2 * k.perGen
}

// Evicted returns how many keys have been forgotten so far.
func (k *Keyed[K]) Evicted() uint64 {
	if k == nil {
		return 0
	}
	return k.evicted.Load()
}
