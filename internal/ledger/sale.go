package ledger

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"time"

	"sluice/internal/payload"
	"sluice/internal/streams"
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
	// WaitingRoom puts buyers in a line before they may order: those who
	// join before StartsAt are drawn in a random, verifiable order, later
	// ones queue behind in arrival order, and the line lets them in with
	// a pass at the backend's pace (see package line).
	WaitingRoom bool `json:"waiting_room,omitempty" yaml:"waiting_room"`
	// LineOpens is how long before StartsAt the line takes buyers; zero
	// means DefaultLineOpens.
	LineOpens Duration `json:"line_opens,omitempty" yaml:"line_opens"`
	// PassTTL is how long a buyer whose turn came may take to order; zero
	// means DefaultPassTTL.
	PassTTL Duration `json:"pass_ttl,omitempty" yaml:"pass_ttl"`
	// ClaimWindow is how long a buyer whose turn is offered has to claim
	// it (by asking for the ticket) before it lapses and its room goes
	// on; zero means DefaultClaimWindow.
	ClaimWindow Duration `json:"claim_window,omitempty" yaml:"claim_window"`
	// PollRate is how many ticket polls a second the sale's gates answer
	// in all: a drawn line opens over drawn/PollRate seconds, front of
	// the line first, and its tickets then look once a period of that
	// length (line.Opening). Zero means DefaultPollRate.
	PollRate float64 `json:"poll_rate,omitempty" yaml:"poll_rate"`
	// LineLimit bounds the tickets in the line; zero means 20 × stock
	// (at least 1,000).
	LineLimit int64 `json:"line_limit,omitempty" yaml:"line_limit"`
	// PayloadSchema is a JSON Schema an order's payload must match
	// (draft 2020-12 unless it says $schema); nil accepts any payload
	// object. It may refer only to itself.
	PayloadSchema map[string]any `json:"payload_schema,omitempty" yaml:"payload_schema"`
	// JoinProof, "altcha", makes each join of the line pay a proof of
	// work (package proof); empty asks none.
	JoinProof string `json:"join_proof,omitempty" yaml:"join_proof"`
	// ProofMaxNumber is the proof's difficulty: a solver tries half of it
	// on average. Zero means proof.DefaultMaxNumber.
	ProofMaxNumber int64 `json:"proof_max_number,omitempty" yaml:"proof_max_number"`
	// LinePerAddress bounds the tickets one client address (IPv4 /32,
	// IPv6 /56) takes in the line; zero means no bound.
	LinePerAddress int64 `json:"line_per_address,omitempty" yaml:"line_per_address"`
	// Variants are the sizes, colours… the sale sells, each with its own
	// stock (names like sale names, at most MaxVariants of them, each at
	// most MaxVariantStock): an order names one, and Stock is their sum.
	// Nil for a sale of one product; see variant.go for how the ledger
	// keeps each variant's stock exact.
	Variants map[string]int64 `json:"variants,omitempty" yaml:"variants"`
}

// JoinProofAltcha is JoinProof's one value: ALTCHA's proof of work.
const JoinProofAltcha = "altcha"

// MaxProofMaxNumber bounds proof_max_number: past it a phone would take
// minutes.
const MaxProofMaxNumber = 100_000_000

// Defaults of the waiting room's settings.
const (
	DefaultLineOpens = 15 * time.Minute
	DefaultPassTTL   = 2 * time.Minute
	// DefaultClaimWindow: a page holding a long poll claims at once;
	// one polling every few seconds has several tries.
	DefaultClaimWindow = 15 * time.Second
	// MinClaimWindow and MaxClaimWindow bound claim_window: a turn
	// needs a poll's time to be claimed, and an absent holder should not
	// hold the line up for long.
	MinClaimWindow = 3 * time.Second
	MaxClaimWindow = 10 * time.Minute
	// MaxLineLimit bounds line_limit: every gate holds the line in memory.
	MaxLineLimit = streams.MaxLineLimit
	// MaxCapacity bounds stock + overbook: the ledger's capacity adds the
	// released orders to it, and every count derived from it must stay
	// far from int64's end (9223372036854775807 + 10 wrapped negative and
	// made a sale sold out from its creation). A billion orders is more
	// than any one drop; a JetStream stream holds them as messages.
	MaxCapacity = 1_000_000_000
)

// LineOpensAt is when the line starts taking buyers: LineOpens before
// StartsAt; the zero time (always) for a sale without a start.
func (s Sale) LineOpensAt() time.Time {
	if s.StartsAt.IsZero() {
		return time.Time{}
	}
	d := time.Duration(s.LineOpens)
	if d <= 0 {
		d = DefaultLineOpens
	}
	return s.StartsAt.Add(-d)
}

// PassLifetime is PassTTL with its default applied.
func (s Sale) PassLifetime() time.Duration {
	if s.PassTTL <= 0 {
		return DefaultPassTTL
	}
	return time.Duration(s.PassTTL)
}

// ClaimLifetime is ClaimWindow with its default applied.
func (s Sale) ClaimLifetime() time.Duration {
	if s.ClaimWindow <= 0 {
		return DefaultClaimWindow
	}
	return time.Duration(s.ClaimWindow)
}

// DefaultPollRate is the polls a second a sale's gates answer unless it
// says otherwise: what one gate on two cores answers with a crowd's
// generator beside it (docs/performance.md, bench/crowd.sh).
const DefaultPollRate = 10_000

// LinePollRate is PollRate with its default applied.
func (s Sale) LinePollRate() float64 {
	if s.PollRate > 0 {
		return s.PollRate
	}
	return DefaultPollRate
}

// LineCap is LineLimit with its default applied.
func (s Sale) LineCap() int64 {
	if s.LineLimit > 0 {
		return s.LineLimit
	}
	return min(MaxLineLimit, max(1000, 20*s.Stock))
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
	if err := s.validateFields(); err != nil {
		return err
	}
	if _, err := payload.Compile(s.PayloadSchema); err != nil {
		return fmt.Errorf("%w: %s: payload_schema: %w", ErrInvalidSale, s.Name, err)
	}
	return nil
}

// validateFields is Validate without compiling the payload schema: what a
// read of the sale's metadata checks, every refresh (the schema was
// compiled when the sale was written, and the gate compiles its own once
// per change).
func (s Sale) validateFields() error {
	switch {
	case !ValidSaleName(s.Name):
		return fmt.Errorf("%w: name %q must be 1-64 of [a-z0-9_-]", ErrInvalidSale, s.Name)
	case s.Stock < 0:
		return fmt.Errorf("%w: %s: stock %d is negative", ErrInvalidSale, s.Name, s.Stock)
	case s.Overbook < 0:
		return fmt.Errorf("%w: %s: overbook %d is negative", ErrInvalidSale, s.Name, s.Overbook)
	case s.Stock > MaxCapacity || s.Overbook > MaxCapacity || s.Stock+s.Overbook > MaxCapacity: // each bounded first: the sum cannot wrap
		return fmt.Errorf("%w: %s: stock + overbook must be at most %d (stock %d, overbook %d)", ErrInvalidSale, s.Name, int64(MaxCapacity), s.Stock, s.Overbook)
	case s.PerBuyer < 0:
		return fmt.Errorf("%w: %s: per_buyer %d is negative", ErrInvalidSale, s.Name, s.PerBuyer)
	case s.PollRate < 0 || s.PollRate > 1e8 || math.IsNaN(s.PollRate):
		return fmt.Errorf("%w: %s: poll_rate is polls a second, between 0 (the default) and 1e8", ErrInvalidSale, s.Name)
	case s.Rate < 0 || s.Burst < 0 || s.QueueBound < 0 || s.BackendRate < 0 || s.MaxWait < 0 ||
		math.IsNaN(s.Rate) || math.IsNaN(s.BackendRate) || math.IsInf(s.Rate, 0) || math.IsInf(s.BackendRate, 0):
		return fmt.Errorf("%w: %s: rate, burst, queue_bound, backend_rate and max_wait must be finite and not negative", ErrInvalidSale, s.Name)
	case s.LineOpens < 0 || s.PassTTL < 0 || s.LineLimit < 0 || s.LineLimit > MaxLineLimit:
		return fmt.Errorf("%w: %s: line_opens and pass_ttl must not be negative, line_limit between 0 and %d", ErrInvalidSale, s.Name, MaxLineLimit)
	case s.JoinProof != "" && s.JoinProof != JoinProofAltcha:
		return fmt.Errorf("%w: %s: join_proof is %q or empty", ErrInvalidSale, s.Name, JoinProofAltcha)
	case s.ProofMaxNumber < 0 || s.ProofMaxNumber > MaxProofMaxNumber || s.LinePerAddress < 0:
		return fmt.Errorf("%w: %s: proof_max_number between 0 and %d, line_per_address not negative", ErrInvalidSale, s.Name, MaxProofMaxNumber)
	case s.ClaimWindow < 0 || (s.ClaimWindow != 0 && (s.ClaimWindow < Duration(MinClaimWindow) || s.ClaimWindow > Duration(MaxClaimWindow))):
		return fmt.Errorf("%w: %s: claim_window must be between %v and %v", ErrInvalidSale, s.Name, MinClaimWindow, MaxClaimWindow)
	case s.WaitingRoom && s.PassTTL != 0 && s.PassTTL < Duration(5*time.Second):
		return fmt.Errorf("%w: %s: pass_ttl must be at least 5s: a buyer needs time to order", ErrInvalidSale, s.Name)
	case !s.StartsAt.IsZero() && !s.EndsAt.IsZero() && !s.EndsAt.After(s.StartsAt):
		return fmt.Errorf("%w: %s: ends_at must be after starts_at", ErrInvalidSale, s.Name)
	}
	return s.validateVariants()
}

// Capacity is the number of orders the ledger admits: stock plus
// overbooking (none for a sale with variants, whose stock is its
// variants').
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

// metaKey holds the sale's settings; lineKey is set once the sale has
// had a waiting room, and never cleared: its line, and what the line
// promised, outlive the room being turned off.
const (
	metaKey = "sluice.sale"
	lineKey = "sluice.line"
)

func (s Sale) metadata(line bool) map[string]string {
	b, _ := json.Marshal(s) // a Sale always marshals
	md := map[string]string{metaKey: string(b)}
	if line || s.WaitingRoom {
		md[lineKey] = "1"
	}
	return md
}

// hasLine says a sale stream's metadata marks a line: the sale has had
// a waiting room.
func hasLine(md map[string]string) bool {
	if md[lineKey] != "" {
		return true
	}
	s, ok := saleFromMetadata(md)
	return ok && s.WaitingRoom
}

func saleFromMetadata(md map[string]string) (Sale, bool) {
	raw, ok := md[metaKey]
	if !ok {
		return Sale{}, false
	}
	var s Sale
	if err := json.Unmarshal([]byte(raw), &s); err != nil || s.validateFields() != nil {
		return Sale{}, false
	}
	return s, true
}
