package loadtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Kind says what part a request plays in the rehearsal.
type Kind string

// Kinds of requests.
const (
	KindBuyer     Kind = "buyer"     // a buyer's first order
	KindImpatient Kind = "impatient" // a retry with the same Idempotency-Key
	KindGreedy    Kind = "greedy"    // a further order by a greedy buyer, new key
	KindBad       Kind = "bad"       // malformed, oversized or for an unknown sale
	// KindSwitch: a buyer told variant_sold_out ordering another variant
	// of those left, at once, as a person would.
	KindSwitch Kind = "switch"
)

// Mix describes the population of buyers. Shares are fractions of all
// requests, between 0 and 1.
type Mix struct {
	// Buyers is the number of distinct buyer ids; default 100,000.
	Buyers int
	// Impatient is the share of requests that retry an earlier request
	// with the same buyer and Idempotency-Key.
	Impatient float64
	// Greedy is the share of requests by greedy buyers, who send order
	// after order with new keys.
	Greedy float64
	// Bad is the share of bad requests: malformed JSON, oversized bodies,
	// unknown sales. They prove the bad path stays cheap.
	Bad float64
	// Keyed is the share of buyers whose client sends an Idempotency-Key
	// (browsers and plain scripts do not). Impatient retries come from
	// these; every keyed request is answered from the ledger, so the
	// share weighs on the cost of the sold-out phase.
	Keyed float64
	// Seed makes the mix repeatable; zero picks one.
	Seed uint64
	// Variants, for a sale with variants, are its variants and how often
	// buyers choose each (ParseVariants); every order names one, and a
	// buyer told variant_sold_out tries another of those left. Nil for a
	// sale without variants.
	Variants []VariantWeight
}

// request is one planned request.
type request struct {
	kind    Kind
	sale    string
	buyer   string
	key     string
	variant string
	body    string
	ctype   string
}

// mixer draws requests. It is safe for concurrent use.
type mixer struct {
	mix    Mix
	sale   string
	mu     sync.Mutex
	rng    *rand.Rand
	next   int
	recent []request // the last normal requests, for impatient retries
	pos    int
}

func newMixer(m Mix, sale string) *mixer {
	if m.Buyers <= 0 {
		m.Buyers = 100_000
	}
	seed := m.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &mixer{mix: m, sale: sale, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), recent: make([]request, 0, 1024)}
}

var oversized = `{"buyer_id":"big","pad":"` + strings.Repeat("x", 16<<10) + `"}`

func (m *mixer) draw() request {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.rng.Float64()
	switch {
	case r < m.mix.Bad:
		switch m.rng.IntN(3) {
		case 0:
			return request{kind: KindBad, sale: m.sale, body: `{"buyer_id":`, ctype: "application/json"}
		case 1:
			return request{kind: KindBad, sale: m.sale, body: oversized, ctype: "application/json"}
		default:
			return request{kind: KindBad, sale: "no-such-sale-" + m.sale, body: `{"buyer_id":"lost"}`, ctype: "application/json"}
		}
	case r < m.mix.Bad+m.mix.Impatient && len(m.recent) > 0: // retries come from keyed requests only
		prev := m.recent[m.rng.IntN(len(m.recent))]
		prev.kind = KindImpatient
		return prev
	case r < m.mix.Bad+m.mix.Impatient+m.mix.Greedy:
		greedy := max(1, m.mix.Buyers/100) // one buyer in a hundred is greedy
		buyer := fmt.Sprintf("greedy-%d", m.rng.IntN(greedy))
		return m.remember(request{kind: KindGreedy, sale: m.sale, buyer: buyer, key: m.keyFor()})
	}
	buyer := fmt.Sprintf("buyer-%d", m.next%m.mix.Buyers)
	m.next++
	return m.remember(request{kind: KindBuyer, sale: m.sale, buyer: buyer, key: m.keyFor()})
}

// switched is the order of a buyer told variant_sold_out for r: another
// variant of those left, chosen by their weights, with a new key for a
// keyed client; false when none is left.
func (m *mixer) switched(r request, left []string) (request, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.pickVariant(left)
	if v == "" || v == r.variant {
		return request{}, false
	}
	next := request{kind: KindSwitch, sale: r.sale, buyer: r.buyer, variant: v}
	if r.key != "" {
		next.key = m.key()
	}
	return m.remember(next), true
}

// pickVariant chooses a variant by weight, among those in left when it
// is not nil; "" for a sale without variants (or none left).
func (m *mixer) pickVariant(left []string) string {
	return weighted(m.mix.Variants, left, m.rng.Float64())
}

// weighted is the variant of vs (among those in left, when it is not
// nil) that u, in [0, 1), falls on when each takes its weight's share;
// "" when none is left.
func weighted(vs []VariantWeight, left []string, u float64) string {
	var total float64
	last := ""
	for _, v := range vs {
		if left == nil || slices.Contains(left, v.Name) {
			total += v.Weight
			last = v.Name
		}
	}
	if total <= 0 {
		return ""
	}
	x := u * total
	for _, v := range vs {
		if left != nil && !slices.Contains(left, v.Name) {
			continue
		}
		if x -= v.Weight; x < 0 {
			return v.Name
		}
	}
	return last
}

// keyFor gives a keyed client's request a fresh key, and others none.
func (m *mixer) keyFor() string {
	if m.rng.Float64() < m.mix.Keyed {
		return m.key()
	}
	return ""
}

func (m *mixer) key() string { return fmt.Sprintf("k-%016x", m.rng.Uint64()) }

func (m *mixer) remember(r request) request {
	if r.variant == "" && len(m.mix.Variants) > 0 {
		r.variant = m.pickVariant(nil)
	}
	r.body = `{"buyer_id":"` + r.buyer + `"}`
	if r.variant != "" {
		r.body = `{"buyer_id":"` + r.buyer + `","variant":"` + r.variant + `"}`
	}
	r.ctype = "application/json"
	if r.key == "" {
		return r // without a key a retry is just another order
	}
	if len(m.recent) < cap(m.recent) {
		m.recent = append(m.recent, r)
	} else {
		m.recent[m.pos] = r
		m.pos = (m.pos + 1) % len(m.recent)
	}
	return r
}

// VariantWeight is a variant of a sale and how often buyers choose it,
// against the others' weights.
type VariantWeight struct {
	Name   string  `json:"name"`
	Weight float64 `json:"weight"`
}

// ParseVariants reads "us9=3,us10=5" (each variant with its weight) or
// "us9,us10" (the same weight each).
func ParseVariants(s string) ([]VariantWeight, error) {
	var out []VariantWeight
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w, hasW := strings.Cut(part, "=")
		weight := 1.0
		if hasW {
			var err error
			if weight, err = strconv.ParseFloat(w, 64); err != nil || weight <= 0 || math.IsInf(weight, 0) || math.IsNaN(weight) {
				return nil, fmt.Errorf("loadtest: variant %q: the weight after = must be a number above 0", part)
			}
		}
		if name == "" || seen[name] {
			return nil, fmt.Errorf("loadtest: variant %q: want NAME or NAME=WEIGHT, each name once", part)
		}
		seen[name] = true
		out = append(out, VariantWeight{Name: name, Weight: weight})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("loadtest: --variants names no variant: want us9=3,us10=5")
	}
	return out, nil
}
