package ledger

import (
	"encoding/json"
	"fmt"
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
}

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
	case s.Rate < 0 || s.Burst < 0 || s.QueueBound < 0:
		return fmt.Errorf("%w: %s: rate, burst and queue_bound must not be negative", ErrInvalidSale, s.Name)
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
