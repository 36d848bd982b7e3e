package limiter

import (
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestBurst(t *testing.T) {
	for _, tc := range []struct {
		rate   float64
		window time.Duration
		want   int
	}{
		{100, DefaultBurstWindow, 10},
		{1000, DefaultBurstWindow, 100},
		{25, DefaultBurstWindow, 3},
		{20, time.Second / 20, 1}, // exactly one: no rounding up past it
		{200, time.Second / 20, 10},
		{210, time.Second / 20, 11},
		{0.5, time.Second / 20, 1}, // at least one
		{0, time.Second / 20, 0},   // no limit
		{-1, DefaultBurstWindow, 0},
	} {
		if got := Burst(tc.rate, tc.window); got != tc.want {
			t.Errorf("Burst(%v, %v) = %d, want %d", tc.rate, tc.window, got, tc.want)
		}
	}
	// The default burst is the default window's.
	if l := NewRate(300, 0); l.Burst() != Burst(300, DefaultBurstWindow) {
		t.Fatalf("NewRate(300, 0) has burst %d", l.Burst())
	}
}

// A limit set on a limiter that allowed everything starts with a full
// bucket, as NewRate's does; one lifted keeps its burst; a rate changed
// keeps the tokens held, up to the new burst.
func TestSetRateFromAndToNoLimit(t *testing.T) {
	l := NewRate(0, 0)
	SetRate(l, 1, 5) // 1 token/s: the bucket cannot refill during the test
	if got := l.TokensAt(time.Now()); got < 4.9 {
		t.Fatalf("a limit set on an unlimited limiter starts with %.2f tokens, want its burst of 5", got)
	}
	if !l.AllowN(time.Now(), 5) || l.Allow() {
		t.Fatal("the full bucket did not allow exactly its burst")
	}
	SetRate(l, 0, 0)
	if l.Limit() != rate.Inf || l.Burst() != 5 || !l.AllowN(time.Now(), 1000) {
		t.Fatalf("no limit: limit %v burst %d", l.Limit(), l.Burst())
	}
	SetRate(l, 1, 5)
	if got := l.TokensAt(time.Now()); got < 4.9 {
		t.Fatalf("the limit back: %.2f tokens, want a full bucket of 5", got)
	}
	SetRate(l, 2, 3)
	if got := l.TokensAt(time.Now()); got > 3.01 {
		t.Fatalf("a smaller burst: %.2f tokens held, want at most 3", got)
	}
	l.AllowN(time.Now(), 3)
	SetRate(l, 1, 10)
	if got := l.TokensAt(time.Now()); got > 0.5 {
		t.Fatalf("a larger burst: %.2f tokens, want the ~0 held: a rate change gives none", got)
	}
}
