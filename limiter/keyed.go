package limiter

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

const shardCount = 64

// Keyed is a set of token buckets, one per key, all with the same rate and
// burst, holding at most a bounded number of keys.
//
// Keys live in two generations per shard. A key seen in the older
// generation moves to the current one; when the current one fills half the
// shard's share of the bound, or has lived for the idle time, the older
// generation is dropped. So a key unseen for a whole generation is
// forgotten, and the memory held is bounded whatever the number of keys
// offered. A forgotten key starts again with a full bucket, which is what
// an idle key would have by then anyway; under a flood of fresh keys the
// per-sale limit, not this one, is the hard bound.
//
// A nil *Keyed allows everything. Keyed is safe for concurrent use and
// never blocks beyond a shard's short critical section.
type Keyed[K comparable] struct {
	limit   rate.Limit
	burst   int
	perGen  int
	idle    time.Duration
	seed    maphash.Seed
	shards  [shardCount]shard[K]
	evicted atomic.Uint64
}

type shard[K comparable] struct {
	mu       sync.Mutex
	cur      map[K]*rate.Limiter
	prev     map[K]*rate.Limiter
	genStart time.Time
}

// NewKeyed returns buckets of limit tokens per second and burst, keeping at
// most maxKeys keys (at least one per shard) and forgetting keys idle
// for about idle (zero means a minute). A limit of zero or rate.Inf
// returns nil, which allows everything.
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
	perShard := maxKeys / shardCount
	if perShard < 2 {
		perShard = 2
	}
	k := &Keyed[K]{limit: limit, burst: burst, perGen: perShard / 2, idle: idle, seed: maphash.MakeSeed()}
	for i := range k.shards {
		k.shards[i].cur = make(map[K]*rate.Limiter)
	}
	return k
}

// Allow is AllowAt(time.Now(), key).
func (k *Keyed[K]) Allow(key K) bool { return k.AllowAt(time.Now(), key) }

// AllowAt reports whether key may have one token at t, and takes it.
func (k *Keyed[K]) AllowAt(t time.Time, key K) bool {
	if k == nil {
		return true
	}
	s := &k.shards[maphash.Comparable(k.seed, key)%shardCount]
	s.mu.Lock()
	l, ok := s.cur[key]
	if !ok {
		// Rescue a returning key from the older generation before a
		// rotation can drop it: an active key keeps its bucket.
		if l, ok = s.prev[key]; ok {
			delete(s.prev, key)
		} else {
			l = rate.NewLimiter(k.limit, k.burst)
		}
		k.rotate(s, t)
		s.cur[key] = l
	}
	allowed := l.AllowN(t, 1)
	s.mu.Unlock()
	return allowed
}

// rotate drops the older generation when the current one is full or old.
func (k *Keyed[K]) rotate(s *shard[K], t time.Time) {
	if s.genStart.IsZero() {
		s.genStart = t
	}
	if len(s.cur) < k.perGen && t.Sub(s.genStart) < k.idle {
		return
	}
	k.evicted.Add(uint64(len(s.prev)))
	s.prev = s.cur
	s.cur = make(map[K]*rate.Limiter, len(s.prev)/2)
	s.genStart = t
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

// Cap returns the most keys the set can hold.
func (k *Keyed[K]) Cap() int {
	if k == nil {
		return 0
	}
	return 2 * k.perGen * shardCount
}

// Evicted returns how many keys have been forgotten so far.
func (k *Keyed[K]) Evicted() uint64 {
	if k == nil {
		return 0
	}
	return k.evicted.Load()
}
