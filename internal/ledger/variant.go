package ledger

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Bounds of a sale's variants: every gate keeps a bit per unit of each
// variant (see units.go), and a metric series per variant.
const (
	MaxVariants     = 64
	MaxVariantStock = 1_000_000
)

// HasVariants says the sale sells variants: each order names one.
func (s Sale) HasVariants() bool { return len(s.Variants) > 0 }

// VariantNames are the sale's variants, sorted.
func (s Sale) VariantNames() []string { return slices.Sorted(maps.Keys(s.Variants)) }

// ValidVariantName reports whether name can name a variant: as a sale's
// name, 1-64 characters of [a-z0-9_-], starting with a letter or digit.
// (No regular expression: an order's body is checked with it.)
func ValidVariantName(name string) bool {
	if len(name) == 0 || len(name) > 64 || name[0] == '_' || name[0] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// WithVariantStock is the sale with Stock the sum of its variants' when
// Stock is left out (zero); a sale without variants is returned as it is.
func (s Sale) WithVariantStock() Sale {
	if s.HasVariants() && s.Stock == 0 {
		s.Stock = s.variantSum()
	}
	return s
}

func (s Sale) variantSum() int64 {
	var sum int64
	for _, n := range s.Variants {
		sum += n
	}
	return sum
}

// validateVariants checks the variants: their names and stock, and that
// the sale's stock is their sum.
func (s Sale) validateVariants() error {
	switch {
	case s.Variants == nil:
		return nil
	case len(s.Variants) == 0:
		return fmt.Errorf("%w: %s: variants must name at least one variant (leave it out for a sale of one product)", ErrInvalidSale, s.Name)
	case len(s.Variants) > MaxVariants:
		return fmt.Errorf("%w: %s: %d variants: a sale has at most %d", ErrInvalidSale, s.Name, len(s.Variants), MaxVariants)
	case s.Overbook != 0:
		return fmt.Errorf("%w: %s: overbook is not supported with variants: each variant sells its own stock", ErrInvalidSale, s.Name)
	}
	for _, v := range s.VariantNames() {
		n := s.Variants[v]
		switch {
		case !ValidVariantName(v):
			return fmt.Errorf("%w: %s: variant name %q must be 1-64 of [a-z0-9_-]", ErrInvalidSale, s.Name, v)
		case n < 0 || n > MaxVariantStock:
			return fmt.Errorf("%w: %s: variant %s: stock %d must be between 0 and %d", ErrInvalidSale, s.Name, v, n, int64(MaxVariantStock))
		}
	}
	if sum := s.variantSum(); s.Stock != 0 && s.Stock != sum {
		return fmt.Errorf("%w: %s: stock %d must be the sum of the variants' stock, %d (or be left out)", ErrInvalidSale, s.Name, s.Stock, sum)
	}
	return nil
}

// unitsKey holds a sale with variants' units in its stream's metadata:
// per variant, how many units its stock has made (see units.go). It
// only grows, so a gate that read it before a change issues fewer units,
// never more.
const unitsKey = "sluice.units"

func unitsFromMetadata(md map[string]string) map[string]int64 {
	u := map[string]int64{}
	if raw, ok := md[unitsKey]; ok {
		_ = json.Unmarshal([]byte(raw), &u) // a bad record reads as no units: nothing sells
	}
	return u
}

func variantMetadata(md map[string]string, units map[string]int64) map[string]string {
	b, _ := json.Marshal(units) // a map of numbers always marshals
	md[unitsKey] = string(b)
	return md
}

// unitID is the message id of the order (or burn) that takes unit k of
// variant v: JetStream stores one message per id in the sale's stream,
// so each unit is sold once, whichever gate sells it.
func unitID(v string, k int64) string { return "u|" + v + "|" + strconv.FormatInt(k, 10) }

// parseUnitID reads unitID's form.
func parseUnitID(id string) (v string, k int64, ok bool) {
	rest, found := strings.CutPrefix(id, "u|")
	if !found {
		return "", 0, false
	}
	i := strings.LastIndexByte(rest, '|')
	if i <= 0 {
		return "", 0, false
	}
	k, err := strconv.ParseInt(rest[i+1:], 10, 64)
	if err != nil || k < 1 {
		return "", 0, false
	}
	return rest[:i], k, true
}

// burnSubject is the subject of the burn of unit k of variant v.
func burnSubject(sale, v string, k int64) string {
	return StockSubjectPrefix(sale) + v + "." + strconv.FormatInt(k, 10)
}

// IsBurn says a message of a sale's stream, on subject, is a burn, not
// an order.
func IsBurn(sale, subject string) bool { return strings.HasPrefix(subject, StockSubjectPrefix(sale)) }

// StockSubjectPrefix is streams.StockSubjectPrefix.
func StockSubjectPrefix(sale string) string { return "sluice.stock." + sale + "." }

// passHeader carries, on an order of a sale with variants, the pass it
// was placed with: a pass admits one order (the message id, which holds
// it in a sale without variants, holds the unit here).
const passHeader = "Sluice-Pass-Ticket"

// VariantState is one variant's stock and counts at one moment.
type VariantState struct {
	// Stock is the variant's stock as configured.
	Stock int64 `json:"stock"`
	// Admitted are the orders of the variant in the ledger; Released
	// those of them that gave their item back (rejected, failed,
	// cancelled).
	Admitted int64 `json:"admitted"`
	Released int64 `json:"released,omitempty"`
	// Remaining is how many more orders of the variant the ledger takes.
	Remaining int64 `json:"remaining"`
}

// variantsOf reads a sale stream's configuration as a sale with
// variants: the sale and its units.
func variantsOf(cfg jetstream.StreamConfig) (Sale, map[string]int64, bool) {
	s, ok := saleFromMetadata(cfg.Metadata)
	if !ok || !s.HasVariants() {
		return Sale{}, nil, false
	}
	return s, unitsFromMetadata(cfg.Metadata), true
}
