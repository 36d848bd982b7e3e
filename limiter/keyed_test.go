package limiter

import (
	"fmt"
	"math"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// offer drives allow at offered requests/s for d on an explicit clock and
// returns how many were allowed.
func offer(allow func(time.Time) bool, offered float64, d time.Duration) int {
	start := time.Unix(1_700_000_000, 0)
	n := int(offered * d.Seconds())
	step := time.Duration(float64(time.Second) / offered)
	ok := 0
	for i := range n {
		if allow(start.Add(time.Duration(i) * step)) {
			ok++
		}
	}
	return ok
}

func TestSaleRateWithinTenPercent(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rate  float64
		burst int
	}{
		{"100/s default burst", 100, 0},
		{"1000/s burst 50", 1000, 50},
		{"2.5/s", 2.5, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewRate(tc.rate, tc.burst)
			d := 5 * time.Second
			got := offer(func(at time.Time) bool { return l.AllowN(at, 1) }, tc.rate*10, d)
			want := tc.rate * d.Seconds()
			if math.Abs(float64(got)-want) > 0.1*want {
				t.Fatalf("admitted %d over %v at 10x offered load, want %.0f ±10%%", got, d, want)
			}
		})
	}
}

func TestKeyedRateWithinTenPercent(t *testing.T) {
	k := NewKeyed[string](rate.Limit(20), 1, 1000, time.Minute)
	d := 5 * time.Second
	got := offer(func(at time.Time) bool { return k.AllowAt(at, "buyer-1") }, 200, d)
	if want := 20 * d.Seconds(); math.Abs(float64(got)-want) > 0.1*want {
		t.Fatalf("admitted %d, want %.0f ±10%%", got, want)
	}
	// Another key has its own bucket.
	if !k.AllowAt(time.Unix(1_700_000_000, 0).Add(d), "buyer-2") {
		t.Fatal("a fresh key was refused")
	}
}

func TestKeyedStaysBoundedWithAMillionKeys(t *testing.T) {
	const bound = 10_000
	k := NewKeyed[netip.Addr](rate.Limit(1), 1, bound, time.Hour)
	at := time.Unix(1_700_000_000, 0)
	for i := range 1_000_000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if !k.AllowAt(at, a) {
			t.Fatalf("key %d refused on its first request", i)
		}
		if i%100_000 == 0 && k.Len() > bound {
			t.Fatalf("after %d keys the limiter holds %d, bound %d", i, k.Len(), bound)
		}
	}
	if k.Len() > bound || k.Len() > k.Cap() {
		t.Fatalf("holds %d keys, bound %d", k.Len(), bound)
	}
	if k.Evicted() < 1_000_000-bound {
		t.Fatalf("evicted %d keys, want at least %d", k.Evicted(), 1_000_000-bound)
	}
}

// sameShard returns n keys named prefix-i that hash to key's shard: the
// keys that made a steady key's bucket depend on the hash seed when the
// generations were counted per shard.
func sameShard(k *Keyed[string], key, prefix string, n int) []string {
	var keys []string
	for i := 0; len(keys) < n; i++ {
		if c := fmt.Sprint(prefix, i); k.shardOf(c) == k.shardOf(key) {
			keys = append(keys, c)
		}
	}
	return keys
}

func TestKeyedKeepsActiveKeys(t *testing.T) {
	// A key in use survives a flood of one-off keys, every one of them in
	// its own shard: it moves to the current generation each time it is
	// seen, and 49 keys between two of its requests are far fewer than
	// the Cap()/2 the promise allows, whatever the hash seed.
	k := NewKeyed[string](rate.Limit(0.001), 3, 640, time.Hour)
	at := time.Unix(1_700_000_000, 0)
	allowed := 0
	for i, key := range sameShard(k, "steady", "flood-", 3000) {
		k.AllowAt(at, key)
		if i%50 == 0 && k.AllowAt(at, "steady") {
			allowed++
		}
	}
	if allowed != 3 {
		t.Fatalf("steady key allowed %d times, want its burst of 3: its bucket was forgotten", allowed)
	}
	if k.Len() > k.Cap() {
		t.Fatalf("holds %d keys in one shard, cap %d", k.Len(), k.Cap())
	}
}

// The promise of Keyed's comment, at its edges: a key asked for again
// after Cap()/2 other keys keeps its bucket, after one more it may not;
// the same whether the others share its shard or are spread.
func TestKeyedPromiseIsExact(t *testing.T) {
	const bound = 640
	at := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		name   string
		others func(k *Keyed[string], key string, n int) []string
	}{
		{"others in its shard", func(k *Keyed[string], key string, n int) []string {
			return sameShard(k, key, key+"-other-", n)
		}},
		{"others spread", func(_ *Keyed[string], key string, n int) []string {
			keys := make([]string, n)
			for i := range keys {
				keys[i] = fmt.Sprint(key, "-other-", i)
			}
			return keys
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// kept reports whether key, asked for once, still has its
			// (empty) bucket after n other keys.
			kept := func(k *Keyed[string], key string, n int) bool {
				if !k.AllowAt(at, key) {
					t.Fatalf("%s refused on its first request", key)
				}
				for _, o := range tc.others(k, key, n) {
					k.AllowAt(at, o)
				}
				return !k.AllowAt(at, key)
			}
			// Wherever the key falls in its generation.
			for _, offset := range []int{0, 1, bound/2 - 1, bound / 2} {
				k := NewKeyed[string](rate.Limit(0.001), 1, bound, time.Hour)
				for i := range offset {
					k.AllowAt(at, fmt.Sprint("filler-", i))
				}
				if !kept(k, "steady", bound/2) {
					t.Errorf("offset %d: forgotten after Cap()/2 = %d other keys", offset, bound/2)
				}
			}
			// The last key of a generation: one other key more and the
			// promise is spent, so it is forgotten (the promise is tight).
			k := NewKeyed[string](rate.Limit(0.001), 1, bound, time.Hour)
			for i := range bound/2 - 1 {
				k.AllowAt(at, fmt.Sprint("filler-", i))
			}
			if kept(k, "last", bound/2+1) {
				t.Errorf("the last key of a generation kept after Cap()/2+1 other keys")
			}
			// A key that started a generation is forgotten after Cap()
			// others: the bound is the bound.
			k = NewKeyed[string](rate.Limit(0.001), 1, bound, time.Hour)
			if k.Cap() != bound {
				t.Fatalf("Cap() = %d, want %d", k.Cap(), bound)
			}
			if kept(k, "first", bound) {
				t.Errorf("a key kept after Cap() = %d other keys: the bound is not the bound", bound)
			}
			if k.Len() > k.Cap() {
				t.Errorf("holds %d keys, cap %d", k.Len(), k.Cap())
			}
		})
	}
}

// The time half of the promise: asked for again within the idle time, a
// key keeps its bucket whatever the rotations the time causes; unseen for
// two idle times while others come, it is forgotten.
func TestKeyedKeepsKeysWithinTheIdleTime(t *testing.T) {
	k := NewKeyed[string](rate.Limit(0.0001), 1, 1000, time.Minute)
	at := time.Unix(1_700_000_000, 0)
	k.AllowAt(at, "steady")
	for i := range 5 {
		// Rotations by time, each just under a minute after the last
		// request of the steady key.
		at = at.Add(time.Minute - time.Millisecond)
		k.AllowAt(at, fmt.Sprint("other-", i))
		if k.AllowAt(at, "steady") {
			t.Fatalf("round %d: steady key forgotten within the idle time", i)
		}
	}
	for i := range 3 {
		at = at.Add(time.Minute)
		k.AllowAt(at, fmt.Sprint("later-", i))
	}
	if !k.AllowAt(at, "steady") {
		t.Fatal("a key unseen for three idle times kept its bucket")
	}
}

func TestKeyedConcurrentStaysBounded(t *testing.T) {
	const bound = 256
	k := NewKeyed[string](rate.Limit(1), 1, bound, time.Hour)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				k.Allow(fmt.Sprint(w, "-", i))
				k.Allow(fmt.Sprint("steady-", w))
			}
		}()
	}
	wg.Wait()
	// Once no rotation is visiting the shards, the bound holds exactly.
	if n := k.Len(); n > k.Cap() {
		t.Fatalf("holds %d keys, cap %d", n, k.Cap())
	}
	if k.Evicted() < 4*5000-bound {
		t.Fatalf("evicted %d", k.Evicted())
	}
}

func TestKeyedForgetsIdleKeys(t *testing.T) {
	k := NewKeyed[string](rate.Limit(1), 1, 100_000, time.Minute)
	at := time.Unix(1_700_000_000, 0)
	touch := func(prefix string, at time.Time) {
		for i := range 1000 {
			k.AllowAt(at, fmt.Sprint(prefix, i))
		}
	}
	touch("first-", at)
	touch("second-", at.Add(61*time.Second)) // first set becomes the old generation
	touch("third-", at.Add(122*time.Second)) // and is dropped
	if n := k.Len(); n > 2000 {
		t.Fatalf("holds %d keys; the first 1000 went idle two generations ago", n)
	}
	if k.Evicted() < 1000 {
		t.Fatalf("evicted %d, want the 1000 idle keys", k.Evicted())
	}
}

func TestNilKeyedAllows(t *testing.T) {
	var k *Keyed[string]
	if k = NewKeyed[string](0, 1, 10, 0); k != nil {
		t.Fatal("zero rate should mean no limiter")
	}
	if !k.Allow("x") || k.Len() != 0 {
		t.Fatal("nil limiter must allow everything")
	}
}

func TestSetRateKeepsBucket(t *testing.T) {
	l := NewRate(0, 0)
	if l.Limit() != rate.Inf {
		t.Fatalf("zero rate = %v, want Inf", l.Limit())
	}
	SetRate(l, 10, 0)
	if l.Limit() != 10 || l.Burst() != 1 {
		t.Fatalf("limit %v burst %d", l.Limit(), l.Burst())
	}
	if RetryAfter(rate.Limit(0.25)) != 4*time.Second || RetryAfter(rate.Limit(100)) != time.Second {
		t.Fatal("RetryAfter")
	}
}

func BenchmarkKeyedAllow(b *testing.B) {
	k := NewKeyed[netip.Addr](rate.Limit(1000), 10, 100_000, time.Minute)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			k.Allow(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
		}
	})
}

// The exact case: a key in the older generation returns just when the
// current generation is full. It must keep its (empty) bucket.
func TestKeyedReturningKeySurvivesTheRotationItTriggers(t *testing.T) {
	k := NewKeyed[string](rate.Limit(0.001), 3, 4, time.Hour) // two keys a generation
	at := time.Unix(1_700_000_000, 0)
	same := sameShard(k, "steady", "other-", 3)
	for range 3 {
		if !k.AllowAt(at, "steady") {
			t.Fatal("burst refused")
		}
	}
	k.AllowAt(at, same[0]) // current: steady, same[0]
	k.AllowAt(at, same[1]) // rotates: older steady, same[0]; current same[1]
	k.AllowAt(at, same[2]) // current: same[1], same[2] (full)
	if k.AllowAt(at, "steady") {
		t.Fatal("the returning key got a fresh bucket: the rotation it triggered dropped it")
	}
}
