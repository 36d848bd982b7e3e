package ledger

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"time"
)

// Sale is a sale's configuration. It is stored as JSON in the metadata of
// the sale's stream, so every gate sharing the JetStream domain reads the
// same settings. The zero value of each optional field means its documented
// default.
type Sale struct {
	// Name is 1-64 characters of [a-z0-9_-], starting with a letter or digit.
	Name string `json:"name" yaml:"name"`
	// Stock is how many orders the sale admits in all.
	Stock int64 `json:"stock" yaml:"stock"`
	// Overbook is how many orders beyond Stock the ledger admits, for a
	// backend that expects some orders to fail payment. Zero by default.
	Overbook int64 `json:"overbook,omitempty" yaml:"overbook"`
	// PerBuyer is how many orders one buyer may hold. Zero means one.
	PerBuyer int64 `json:"per_buyer,omitempty" yaml:"per_buyer"`
	// StartsAt and EndsAt bound the sale window; zero means unbounded.
	StartsAt time.Time `json:"starts_at,omitzero" yaml:"starts_at"`
	EndsAt   time.Time `json:"ends_at,omitzero" yaml:"ends_at"`
	// Rate is the admission rate of this sale per gate instance in orders
	// per second, Burst its bucket; zero Rate means no global limit.
	Rate  float64 `json:"rate,omitempty" yaml:"rate"`
	Burst int     `json:"burst,omitempty" yaml:"burst"`
	// QueueBound diverts orders with "busy" while this many admitted
	// orders wait for the drain; zero means no bound.
	QueueBound int64 `json:"queue_bound,omitempty" yaml:"queue_bound"`
	// BackendRate is the most orders per second each drain sends to the
	// backend for this sale; zero means no cap (see also --backend-rate).
	BackendRate float64 `json:"backend_rate,omitempty" yaml:"backend_rate"`
	// MaxWait bounds how long an order answered 202 waits for the drain:
	// the gates bound the queue at the drain rate times MaxWait (within
	// QueueBound, when it is set too) instead of QueueBound alone. Zero
	// means QueueBound applies as it is.
	MaxWait Duration `json:"max_wait,omitempty" yaml:"max_wait"`
}

// Duration is a time.Duration written "30s" in JSON and YAML; it also
// reads a plain number as seconds.
type Duration time.Duration

// MarshalJSON writes the duration as Go writes it ("1m30s").
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "90s", "1m30s" or 90 (seconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var secs float64
		if err := json.Unmarshal(b, &secs); err != nil {
			return fmt.Errorf("a duration is a string like \"30s\" or a number of seconds")
		}
		return d.fromSeconds(secs)
	}
	return d.UnmarshalText([]byte(s))
}

// UnmarshalText reads "90s" or "90" (seconds), for YAML files.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		var secs float64
		if _, serr := fmt.Sscanf(string(b), "%g", &secs); serr != nil {
			return fmt.Errorf("duration %q: %w", b, err)
		}
		return d.fromSeconds(secs)
	}
	*d = Duration(v)
	return nil
}

func (d *Duration) fromSeconds(secs float64) error {
	if math.IsNaN(secs) || math.IsInf(secs, 0) || math.Abs(secs) > 1e9 {
		return fmt.Errorf("duration %v seconds is out of range", secs)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// Seconds is the duration in seconds.
func (d Duration) Seconds() float64 { return time.Duration(d).Seconds() }

var saleName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// ValidSaleName reports whether name can name a sale.
func ValidSaleName(name string) bool { return saleName.MatchString(name) }

// Validate checks the sale and returns an error wrapping ErrInvalidSale.
func (s Sale) Validate() error {
	switch {
	case !ValidSaleName(s.Name):
		return fmt.Errorf("%w: name %q must be 1-64 of [a-z0-9_-]", ErrInvalidSale, s.Name)
	case s.Stock < 0:
		return fmt.Errorf("%w: %s: stock %d is negative", ErrInvalidSale, s.Name, s.Stock)
	case s.Overbook < 0:
		return fmt.Errorf("%w: %s: overbook %d is negative", ErrInvalidSale, s.Name, s.Overbook)
	case s.PerBuyer < 0:
		return fmt.Errorf("%w: %s: per_buyer %d is negative", ErrInvalidSale, s.Name, s.PerBuyer)
	case s.Rate < 0 || s.Burst < 0 || s.QueueBound < 0 || s.BackendRate < 0 || s.MaxWait < 0 ||
		math.IsNaN(s.Rate) || math.IsNaN(s.BackendRate) || math.IsInf(s.Rate, 0) || math.IsInf(s.BackendRate, 0):
		return fmt.Errorf("%w: %s: rate, burst, queue_bound, backend_rate and max_wait must be finite and not negative", ErrInvalidSale, s.Name)
	case !s.StartsAt.IsZero() && !s.EndsAt.IsZero() && !s.EndsAt.After(s.StartsAt):
		return fmt.Errorf("%w: %s: ends_at must be after starts_at", ErrInvalidSale, s.Name)
	}
	return nil
}

// Capacity is the number of orders the ledger admits: stock plus overbooking.
func (s Sale) Capacity() int64 { return s.Stock + s.Overbook }

// OrdersPerBuyer is PerBuyer with its default applied.
func (s Sale) OrdersPerBuyer() int64 {
	if s.PerBuyer <= 0 {
		return 1
	}
	return s.PerBuyer
}

// Phase is where a sale stands in its window at a given time.
type Phase int

const (
	Upcoming Phase = iota
	Open
	Closed
)

// PhaseAt returns the sale's phase at t.
func (s Sale) PhaseAt(t time.Time) Phase {
	switch {
	case !s.StartsAt.IsZero() && t.Before(s.StartsAt):
		return Upcoming
	case !s.EndsAt.IsZero() && !t.Before(s.EndsAt):
		return Closed
	}
	return Open
}

const metaKey = "sluice.sale"

func (s Sale) metadata() map[string]string {
	b, _ := json.Marshal(s) // a Sale always marshals
	return map[string]string{metaKey: string(b)}
}

func saleFromMetadata(md map[string]string) (Sale, bool) {
	raw, ok := md[metaKey]
	if !ok {
		return Sale{}, false
	}
	var s Sale
	if err := json.Unmarshal([]byte(raw), &s); err != nil || s.Validate() != nil {
		return Sale{}, false
	}
	return s, true
}
