package limiter

import (
	"math"
	"time"

	"golang.org/x/time/rate"
)

// DefaultBurstWindow is the burst a zero burst means in NewRate and
// SetRate: a tenth of a second of tokens, so that over a few seconds the
// admitted rate stays within a few percent of the limit.
const DefaultBurstWindow = time.Second / 10

// Burst is the burst of a bucket of perSecond tokens that holds window's
// worth of them: ⌈perSecond × window⌉, at least one; 0 when perSecond is
// not positive (no limit). In any interval T such a bucket lets through
// at most perSecond × T + Burst tokens.
func Burst(perSecond float64, window time.Duration) int {
	if perSecond <= 0 {
		return 0
	}
	// Divided by the windows in a second, exact for the windows that
	// divide it (a tenth, a twentieth), so that a rate of 20/s is a burst
	// of exactly one twentieth-second's 1 token, not 1 plus a rounding.
	return int(math.Max(1, math.Ceil(perSecond/(float64(time.Second)/float64(window)))))
}

// NewRate returns a limiter of perSecond tokens and burst, or one that
// allows everything when perSecond is zero. A zero burst means
// Burst(perSecond, DefaultBurstWindow). The bucket starts full.
func NewRate(perSecond float64, burst int) *rate.Limiter {
	lim, b := toLimit(perSecond, burst)
	return rate.NewLimiter(lim, b) // starts with a full bucket
}

// SetRate changes l to perSecond and burst as NewRate would make it,
// keeping the tokens it holds (no more than the new burst). A limiter
// that allowed everything holds a full bucket, as a new one does; one
// told to allow everything keeps its burst, which has no effect until a
// limit returns.
func SetRate(l *rate.Limiter, perSecond float64, burst int) {
	lim, b := toLimit(perSecond, burst)
	if lim == rate.Inf {
		if l.Limit() != rate.Inf {
			l.SetLimit(rate.Inf)
		}
		return
	}
	// The burst first: under no limit the bucket fills to its burst at
	// once, so that the limit set next starts from a full new burst.
	if l.Burst() != b {
		l.SetBurst(b)
	}
	if l.Limit() != lim {
		l.SetLimit(lim)
	}
}

func toLimit(perSecond float64, burst int) (rate.Limit, int) {
	if perSecond <= 0 {
		return rate.Inf, 0
	}
	if burst <= 0 {
		burst = Burst(perSecond, DefaultBurstWindow)
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
