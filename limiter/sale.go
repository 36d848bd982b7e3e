package limiter

import (
	"math"
	"time"

	"golang.org/x/time/rate"
)

// NewRate returns a per-sale limiter of perSecond tokens and burst, or one
// that allows everything when perSecond is zero. A zero burst defaults to
// a tenth of a second's worth of tokens (at least one), so that over a few
// seconds the admitted rate stays within a few percent of perSecond.
func NewRate(perSecond float64, burst int) *rate.Limiter {
	lim, b := toLimit(perSecond, burst)
	return rate.NewLimiter(lim, b) // starts with a full bucket
}

// SetRate changes l to perSecond and burst as NewRate would make it,
// keeping the tokens it holds.
func SetRate(l *rate.Limiter, perSecond float64, burst int) {
	lim, b := toLimit(perSecond, burst)
	if l.Limit() != lim {
		l.SetLimit(lim)
	}
	if l.Burst() != b {
		l.SetBurst(b)
	}
}

func toLimit(perSecond float64, burst int) (rate.Limit, int) {
	if perSecond <= 0 {
		return rate.Inf, 0
	}
	if burst <= 0 {
		burst = int(math.Max(1, math.Ceil(perSecond/10)))
	}
	return rate.Limit(perSecond), burst
}

// RetryAfter is the time one token of l takes to refill, rounded to whole
// seconds and at least one: the Retry-After of a rate-limited answer.
func RetryAfter(l rate.Limit) time.Duration {
	if l <= 0 || l == rate.Inf {
		return time.Second
	}
	d := time.Duration(float64(time.Second) / float64(l))
	return max(time.Second, d.Round(time.Second))
}
