package loadtest

import (
	"fmt"
	"math"
	"time"
)

// Segment is a stretch of a schedule whose rate moves linearly from From
// to To requests per second over Duration.
type Segment struct {
	Duration time.Duration
	From, To float64
}

// Profile is a schedule of request rates, a sequence of segments. Its zero
// value sends nothing.
type Profile struct {
	Name     string
	Segments []Segment
}

// Constant sends rate requests per second for d.
func Constant(rate float64, d time.Duration) Profile {
	return Profile{Name: "constant", Segments: []Segment{{d, rate, rate}}}
}

// Ramp moves the rate linearly from one rate to another over d: it finds
// the rate at which the gate's answers turn (the knee).
func Ramp(from, to float64, d time.Duration) Profile {
	return Profile{Name: "ramp", Segments: []Segment{{d, from, to}}}
}

// Spike is the shape of a real drop: a trickle of early clickers before
// T0, then the peak at T0 held for hold, then a linear decay back to the
// trickle over decay.
func Spike(trickle float64, before time.Duration, peak float64, hold, decay time.Duration) Profile {
	return Profile{Name: "spike", Segments: []Segment{
		{before, trickle, trickle},
		{hold, peak, peak},
		{decay, peak, trickle},
	}}
}

// Steps holds each rate for the same time in turn.
func Steps(rates []float64, each time.Duration) Profile {
	p := Profile{Name: "steps"}
	for _, r := range rates {
		p.Segments = append(p.Segments, Segment{each, r, r})
	}
	return p
}

// Validate checks the profile.
func (p Profile) Validate() error {
	if len(p.Segments) == 0 {
		return fmt.Errorf("loadtest: profile %q has no segments", p.Name)
	}
	for i, s := range p.Segments {
		if s.Duration <= 0 || s.From < 0 || s.To < 0 || math.IsNaN(s.From) || math.IsNaN(s.To) || math.IsInf(s.From, 0) || math.IsInf(s.To, 0) {
			return fmt.Errorf("loadtest: profile %q segment %d: want a positive duration and finite rates >= 0", p.Name, i)
		}
	}
	return nil
}

// Duration is the profile's length.
func (p Profile) Duration() time.Duration {
	var d time.Duration
	for _, s := range p.Segments {
		d += s.Duration
	}
	return d
}

// Total is how many requests the profile schedules.
func (p Profile) Total() uint64 {
	var n float64
	for _, s := range p.Segments {
		n += (s.From + s.To) / 2 * s.Duration.Seconds()
	}
	return uint64(math.Floor(n + 1e-9))
}

// RateAt is the scheduled rate at offset t.
func (p Profile) RateAt(t time.Duration) float64 {
	for _, s := range p.Segments {
		if t < s.Duration {
			return s.From + (s.To-s.From)*t.Seconds()/s.Duration.Seconds()
		}
		t -= s.Duration
	}
	return 0
}

// Due returns the offset from the start at which request n (counting from
// 0) is due: the time t at which the integral of the rate reaches n. It
// returns false past the end of the profile.
func (p Profile) Due(n uint64) (time.Duration, bool) {
	remaining := float64(n)
	var offset time.Duration
	for _, s := range p.Segments {
		secs := s.Duration.Seconds()
		count := (s.From + s.To) / 2 * secs
		if remaining < count {
			a := s.From
			b := (s.To - s.From) / secs // rate slope per second
			var t float64
			if math.Abs(b) < 1e-12 {
				t = remaining / a
			} else {
				// a t + b t²/2 = remaining
				t = (-a + math.Sqrt(a*a+2*b*remaining)) / b
			}
			return offset + time.Duration(t*float64(time.Second)), true
		}
		remaining -= count
		offset += s.Duration
	}
	return 0, false
}

// CountBy is how many requests the profile schedules before offset t.
func (p Profile) CountBy(t time.Duration) uint64 {
	var n float64
	for _, s := range p.Segments {
		if t <= 0 {
			break
		}
		d := min(t, s.Duration)
		secs := d.Seconds()
		slope := (s.To - s.From) / s.Duration.Seconds()
		n += s.From*secs + slope*secs*secs/2
		t -= d
	}
	return uint64(math.Ceil(n - 1e-9))
}

// Phase is a named stretch of a run's schedule, for the report's markers.
type Phase struct {
	Name  string  `json:"name"`
	Start float64 `json:"start"` // seconds from the start of the run
	End   float64 `json:"end"`
	From  float64 `json:"from"` // scheduled rate at its start and end, requests/s
	To    float64 `json:"to"`
}

// T0 is the moment the drop opens: the spike's peak, the start otherwise.
func (p Profile) T0() time.Duration {
	if p.Name == "spike" && len(p.Segments) > 1 {
		return p.Segments[0].Duration
	}
	return 0
}

// Phases names the profile's segments.
func (p Profile) Phases() []Phase {
	var out []Phase
	var at time.Duration
	for i, s := range p.Segments {
		name := p.Name
		switch {
		case p.Name == "spike" && len(p.Segments) == 3:
			name = [3]string{"trickle before T0", "peak from T0", "decay"}[i]
		case len(p.Segments) > 1:
			name = fmt.Sprintf("%s %d (%.0f/s)", p.Name, i+1, s.From)
		}
		out = append(out, Phase{Name: name, Start: at.Seconds(), End: (at + s.Duration).Seconds(), From: s.From, To: s.To})
		at += s.Duration
	}
	return out
}
