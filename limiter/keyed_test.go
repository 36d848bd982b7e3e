package limiter

import (
	"fmt"
	"hash/maphash"
	"math"
	"net/netip"
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

func TestKeyedKeepsActiveKeys(t *testing.T) {
	// A key in use survives a flood of one-off keys: it moves to the
	// current generation each time it is seen.
	k := NewKeyed[string](rate.Limit(0.001), 3, 640, time.Hour)
	at := time.Unix(1_700_000_000, 0)
	allowed := 0
	for i := range 10_000 {
		k.AllowAt(at, fmt.Sprint("flood-", i))
		if i%50 == 0 && k.AllowAt(at, "steady") {
			allowed++
		}
	}
	if allowed != 3 {
		t.Fatalf("steady key allowed %d times, want its burst of 3: its bucket was forgotten", allowed)
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

// The exact case: a key in the older generation returns just when its
// shard's current generation is full. It must keep its (empty) bucket.
func TestKeyedReturningKeySurvivesTheRotationItTriggers(t *testing.T) {
	k := NewKeyed[string](rate.Limit(0.001), 3, 4*shardCount, time.Hour) // two keys a generation per shard
	at := time.Unix(1_700_000_000, 0)
	shard := func(key string) uint64 { return maphash.Comparable(k.seed, key) % shardCount }
	var same []string // keys of the steady key's shard
	for i := 0; len(same) < 3; i++ {
		if key := fmt.Sprint("other-", i); shard(key) == shard("steady") {
			same = append(same, key)
		}
	}
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
