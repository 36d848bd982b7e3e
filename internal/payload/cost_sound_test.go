package payload

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCostBoundHolds checks the cost model against the library on
// random schemas and payloads: whatever the model accepts, a check
// allocates no more than the bound's units allow (a unit is at most
// 211 bytes on what BenchmarkCostUnits measures; 256 here, and 8 KiB for
// the check's own start). The seed is printed; SLUICE_COST_SEED replays
// one. Time is BenchmarkWorstSchemas's to measure: the test logs the
// worst CPU per unit it saw.
func TestCostBoundHolds(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SLUICE_COST_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (SLUICE_COST_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	const schemas, payloads = 150, 12
	accepted, worst := 0, 0.0
	for range schemas {
		g := &schemaGen{rng: rng}
		src := g.root()
		var doc map[string]any
		if err := json.Unmarshal([]byte(src), &doc); err != nil {
			t.Fatalf("generated %s: %v", src, err)
		}
		s, err := Compile(doc)
		if err != nil {
			continue
		}
		accepted++
		for range payloads {
			p := randomPayload(rng)
			tree, _, err := Parse([]byte(p))
			if err != nil {
				t.Fatalf("generated payload %.80s: %v", p, err)
			}
			const runs = 3
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := processCPU()
			for range runs {
				s.Check(tree)
			}
			cpu := (processCPU() - start) / runs
			runtime.ReadMemStats(&after)
			perCheck := float64(after.TotalAlloc-before.TotalAlloc) / runs
			if limit := s.Cost()*256 + 8<<10; perCheck > limit && !raceEnabled {
				t.Errorf("schema %s on payload %s: %.0f bytes a check, over %.0f for a bound of %.0f units", src, p, perCheck, limit, s.Cost())
			}
			worst = max(worst, float64(cpu.Nanoseconds())/s.Cost())
		}
	}
	t.Logf("%d of %d schemas accepted; at most %.0f ns of CPU a unit (noisy: a few checks each)", accepted, schemas, worst)
	if accepted < schemas/6 {
		t.Errorf("only %d of %d random schemas accepted: the test checks too little", accepted, schemas)
	}
}

// schemaGen makes random schemas out of the keywords the model prices.
type schemaGen struct {
	rng  *rand.Rand
	defs int
}

var (
	genKeys     = []string{"a", "b", "c", "sku", "qty", "n"}
	genPatterns = []string{"^[a-z]+$", "(a|b|ab)*c", "^.{0,3}$", "x", "^[A-Z0-9-]{1,8}$"}
)

func (g *schemaGen) root() string {
	g.defs = g.rng.IntN(3)
	var defs []string
	for i := range g.defs {
		defs = append(defs, fmt.Sprintf(`"d%d":%s`, i, g.schema(2)))
	}
	body := g.schema(3)
	if len(defs) == 0 {
		return body
	}
	return `{"$defs":{` + strings.Join(defs, ",") + `},"allOf":[` + body + `]}`
}

func (g *schemaGen) schema(depth int) string {
	if depth <= 0 {
		return g.leaf()
	}
	r := g.rng
	sub := func() string { return g.schema(depth - 1) }
	several := func() string {
		n := 1 + r.IntN(3)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = sub()
		}
		return strings.Join(parts, ",")
	}
	switch r.IntN(17) {
	case 0:
		return `{"properties":{"` + genKeys[r.IntN(len(genKeys))] + `":` + sub() + `,"` + genKeys[r.IntN(len(genKeys))] + `x":` + sub() + `},"required":["a"]}`
	case 1:
		return `{"additionalProperties":` + sub() + `}`
	case 2:
		return `{"patternProperties":{"` + genPatterns[r.IntN(len(genPatterns))] + `":` + sub() + `}}`
	case 3:
		return `{"propertyNames":` + sub() + `}`
	case 4:
		if r.IntN(2) == 0 {
			return fmt.Sprintf(`{"maxItems":%d,"items":%s}`, 1+r.IntN(20), sub())
		}
		return `{"items":` + sub() + `}`
	case 5:
		return `{"prefixItems":[` + several() + `],"items":` + sub() + `,"maxItems":6}`
	case 6:
		return `{"contains":` + sub() + `}`
	case 7:
		return `{"uniqueItems":true,"maxItems":` + strconv.Itoa(2+r.IntN(30)) + `}`
	case 8:
		return `{"anyOf":[` + several() + `]}`
	case 9:
		return `{"allOf":[` + several() + `]}`
	case 10:
		return `{"oneOf":[` + several() + `]}`
	case 11:
		return `{"not":` + sub() + `}`
	case 12:
		return `{"if":` + sub() + `,"then":` + sub() + `,"else":` + sub() + `}`
	case 13:
		if g.defs > 0 {
			return fmt.Sprintf(`{"$ref":"#/$defs/d%d"}`, r.IntN(g.defs))
		}
		return sub()
	case 14:
		return `{"dependentSchemas":{"a":` + sub() + `}}`
	case 15:
		return `{"unevaluatedProperties":` + sub() + `,"properties":{"a":true}}`
	}
	return `{"properties":{"n":{"properties":{"n":` + sub() + `}}}}`
}

func (g *schemaGen) leaf() string {
	r := g.rng
	switch r.IntN(10) {
	case 0:
		return `{"type":"` + []string{"string", "integer", "number", "object", "array", "boolean"}[r.IntN(6)] + `"}`
	case 1:
		return `{"enum":[1,2.5,"a",null,{"a":[1]}]}`
	case 2:
		return `{"const":` + []string{`3`, `"x"`, `[1,2]`, `{"a":1}`}[r.IntN(4)] + `}`
	case 3:
		return `{"minimum":1,"maximum":9,"multipleOf":0.5}`
	case 4:
		return `{"pattern":"` + genPatterns[r.IntN(len(genPatterns))] + `"}`
	case 5:
		return `{"maxLength":3,"pattern":"(a|b)*c"}`
	case 6:
		return `{"required":["a","b"],"minProperties":1}`
	case 7:
		return `false`
	case 8:
		return `{"type":"integer","exclusiveMinimum":0}`
	}
	return `true`
}

// randomPayload makes a payload of at most MaxBytes of one of a few
// shapes: a random tree, many short keys, a deep chain ending in a wide
// array, a long array of small values, a long string.
func randomPayload(r *rand.Rand) string {
	var b strings.Builder
	switch r.IntN(5) {
	case 0:
		b.WriteString(`{"a":`)
		randomValue(r, &b, 5)
		b.WriteString(`,"n":`)
		randomValue(r, &b, 5)
		b.WriteString("}")
	case 1:
		return fill("{", func(i int) string {
			return strconv.Quote(genKeys[i%len(genKeys)]+keyName(i)) + ":" + []string{`0`, `""`, `[]`, `{}`, `1.5`, `"ab"`}[r.IntN(6)]
		}, "}")
	case 2:
		d := 1 + r.IntN(29) // with the root, the array and an element: 32 levels
		return fill(`{"a":`+strings.Repeat(`{"n":`, d/2)+strings.Repeat("[", d-d/2)+"[", func(int) string {
			return []string{`0`, `"a"`, `{}`, `[]`, `-1`, `0.5`}[r.IntN(6)]
		}, "]"+strings.Repeat("]", d-d/2)+strings.Repeat("}", d/2)+"}")
	case 3:
		item := []string{`0`, `"ab"`, `{"a":1}`, `[1]`, `true`, `0.5`}[r.IntN(6)]
		return fill(`{"`+genKeys[r.IntN(len(genKeys))]+`":[`, func(int) string { return item }, "]}")
	case 4:
		return `{"` + genKeys[r.IntN(len(genKeys))] + `":"` + strings.Repeat([]string{"ab", "a", "xyz"}[r.IntN(3)], 600) + `"}`
	}
	s := b.String()
	if len(s) > MaxBytes {
		return `{}`
	}
	return s
}

func randomValue(r *rand.Rand, b *strings.Builder, depth int) {
	if depth == 0 || b.Len() > MaxBytes/2 {
		b.WriteString([]string{`0`, `"a"`, `null`, `true`, `2.5`}[r.IntN(5)])
		return
	}
	switch r.IntN(3) {
	case 0:
		b.WriteString("[")
		for i := range r.IntN(6) {
			if i > 0 {
				b.WriteString(",")
			}
			randomValue(r, b, depth-1)
		}
		b.WriteString("]")
	case 1:
		b.WriteString("{")
		for i := range r.IntN(5) {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(strconv.Quote(genKeys[i]))
			b.WriteString(":")
			randomValue(r, b, depth-1)
		}
		b.WriteString("}")
	default:
		b.WriteString([]string{`1`, `"sku"`, `-3.25`, `false`, `""`}[r.IntN(5)])
	}
}
