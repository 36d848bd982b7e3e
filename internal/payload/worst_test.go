package payload

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// The promise of cost.go: every schema Compile accepts checks any
// payload within about 1 ms and 1 MiB. worstShapes are the nastiest
// schemas it accepts, each grown by its knob k until one step more is
// refused, each with the payload that costs it most: what
// BenchmarkWorstSchemas measures (docs/performance.md has the figures)
// and TestWorstSchemasStayWithinAMebibyte holds to its memory half.
type worstShape struct {
	name string
	// schema is the schema at knob k; payload its costliest payload,
	// at most MaxBytes in canonical form.
	schema  func(k int) string
	payload func(k int) string
	// passes: the costliest payload is one the schema takes (uniqueItems
	// compares every item only when none repeats).
	passes bool
}

// fill repeats item (joined by commas) between open and close as often
// as the whole stays within MaxBytes; item gets its index.
func fill(open string, item func(i int) string, close string) string {
	var b strings.Builder
	b.WriteString(open)
	for i := 0; ; i++ {
		next := item(i)
		sep := ""
		if i > 0 {
			sep = ","
		}
		if b.Len()+len(sep)+len(next)+len(close) > MaxBytes {
			break
		}
		b.WriteString(sep)
		b.WriteString(next)
	}
	b.WriteString(close)
	return b.String()
}

// keyName is a short distinct key for member i.
func keyName(i int) string { return fmt.Sprintf("%x", i) }

func repeatJoin(n int, f func(i int) string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = f(i)
	}
	return strings.Join(parts, ",")
}

var worstShapes = []worstShape{
	{
		// A DAG of anyOf over $refs, 2 wide and k deep, at the root:
		// 2^k evaluations of the root, each walking all its keys.
		name: "anyOf-fanout-keys",
		schema: func(k int) string {
			defs := repeatJoin(k, func(i int) string {
				return fmt.Sprintf(`"d%d":{"anyOf":[{"$ref":"#/$defs/d%d"},{"$ref":"#/$defs/d%d"}]}`, i, i+1, i+1)
			})
			return fmt.Sprintf(`{"$ref":"#/$defs/d0","$defs":{%s,"d%d":{"required":["absent"]}}}`, defs, k)
		},
		payload: func(int) string { return fill("{", func(i int) string { return `"` + keyName(i) + `":0` }, "}") },
	},
	{
		// The same fan-out at one value 30 arrays deep (each of at most
		// one element): an object of many keys, walked by each leaf,
		// which fails with an error that copies the 31-level path.
		name: "anyOf-fanout-deep",
		schema: func(k int) string {
			defs := repeatJoin(k, func(i int) string {
				return fmt.Sprintf(`"d%d":{"anyOf":[{"$ref":"#/$defs/d%d"},{"$ref":"#/$defs/d%d"}]}`, i, i+1, i+1)
			})
			items := `{"$ref":"#/$defs/d0"}`
			for range 30 {
				items = `{"maxItems":1,"items":` + items + `}`
			}
			return fmt.Sprintf(`{"properties":{"a":%s},"$defs":{%s,"d%d":{"type":"string"}}}`, items, defs, k)
		},
		payload: func(int) string {
			return fill(`{"a":`+strings.Repeat("[", 30)+"{", func(i int) string { return `"` + keyName(i) + `":0` }, "}"+strings.Repeat("]", 30)+"}")
		},
	},
	{
		// Numeric enums on k elements (maxItems k), every element
		// compared with every value and failing.
		name: "enum-numbers-items",
		schema: func(k int) string {
			return fmt.Sprintf(`{"properties":{"a":{"maxItems":%d,"items":{"enum":[1,2,3,4,5,6,7,8,9,10.5]}}}}`, k)
		},
		payload: func(k int) string { return `{"a":[` + repeatJoin(k, func(int) string { return "0" }) + `]}` },
	},
	{
		// anyOf of three failing branches on k elements.
		name: "anyOf-items",
		schema: func(k int) string {
			return fmt.Sprintf(`{"properties":{"a":{"maxItems":%d,"items":{"anyOf":[{"type":"string"},{"type":"integer","minimum":1},{"multipleOf":0.07}]}}}}`, k)
		},
		payload: func(k int) string { return `{"a":[` + repeatJoin(k, func(int) string { return "0.5" }) + `]}` },
	},
	{
		// An unanchored pattern that keeps many NFA threads alive, k
		// alternatives, on a string as long as a payload holds.
		name: "pattern-nfa",
		schema: func(k int) string {
			alts := repeatJoin(k, func(i int) string { return []string{"a", "b", "ab", "ba", "aab", "abb", "bab", "aba"}[i%8] })
			return fmt.Sprintf(`{"properties":{"s":{"pattern":"(%s)*c"}}}`, strings.ReplaceAll(alts, ",", "|"))
		},
		payload: func(int) string { return `{"s":"` + strings.Repeat("ab", (MaxBytes-8)/2) + `"}` },
	},
	{
		// An unanchored pattern on each of k short strings (maxItems
		// k): what a match costs whatever the string.
		name: "pattern-items",
		schema: func(k int) string {
			return fmt.Sprintf(`{"properties":{"a":{"maxItems":%d,"items":{"pattern":"(a|b|ab|ba)*z"}}}}`, k)
		},
		payload: func(k int) string { return `{"a":[` + repeatJoin(k, func(int) string { return `"ab"` }) + `]}` },
	},
	{
		// Asserted formats (draft-07), k of them, on a string as long as
		// a payload holds, made for the slowest of them (ipv6).
		name: "format-draft-07",
		schema: func(k int) string {
			return `{"$schema":"http://json-schema.org/draft-07/schema#","properties":{"s":{"allOf":[` +
				repeatJoin(k, func(i int) string {
					return []string{`{"format":"ipv6"}`, `{"format":"date"}`, `{"format":"ipv4"}`}[i%3]
				}) + `]}}}`
		},
		payload: func(int) string { return `{"s":"` + strings.Repeat("1:", (MaxBytes-8)/2) + `"}` },
	},
	{
		// Recursion into the payload through a property, k numeric
		// checks failing at each of 31 levels.
		name: "recursion-properties",
		schema: func(k int) string {
			props := repeatJoin(k, func(i int) string { return fmt.Sprintf(`"v%d":{"type":"integer","minimum":1}`, i) })
			return `{"$defs":{"n":{"type":"object","properties":{"c":{"$ref":"#/$defs/n"},` + props + `}}},"$ref":"#/$defs/n"}`
		},
		payload: func(k int) string {
			level := repeatJoin(k, func(i int) string { return fmt.Sprintf(`"v%d":0.5`, i) })
			p := "{" + level + "}"
			for range 31 {
				next := `{"c":` + p + "," + level + "}"
				if len(next) > MaxBytes {
					break
				}
				p = next
			}
			return p
		},
	},
	{
		// uniqueItems k times over (allOf) on an array of distinct
		// objects.
		name: "uniqueItems",
		schema: func(k int) string {
			return `{"properties":{"a":{"allOf":[` + repeatJoin(k, func(int) string { return `{"uniqueItems":true}` }) + `]}}}`
		},
		payload: func(int) string {
			return fill(`{"a":[`, func(i int) string { return fmt.Sprintf(`{"x":[%d,1.5]}`, i) }, `]}`)
		},
		passes: true,
	},
	{
		// unevaluatedProperties behind k allOf branches, each keeping a
		// record of the keys, on an object of many keys.
		name: "unevaluatedProperties",
		schema: func(k int) string {
			return `{"allOf":[` + repeatJoin(k, func(i int) string { return fmt.Sprintf(`{"properties":{"p%d":{}}}`, i) }) +
				`],"unevaluatedProperties":true}`
		},
		payload: func(int) string { return fill("{", func(i int) string { return `"` + keyName(i) + `":""` }, "}") },
		passes:  true,
	},
	{
		// k patternProperties that all match every key, failing.
		name: "patternProperties",
		schema: func(k int) string {
			return `{"patternProperties":{` + repeatJoin(k, func(i int) string { return fmt.Sprintf(`"^.{0,%d}":{"maxLength":1}`, i+1) }) + `}}`
		},
		payload: func(int) string { return fill("{", func(i int) string { return `"` + keyName(i) + `":"ab"` }, "}") },
	},
	{
		// propertyNames, k allOf copies, on many keys, each validated
		// as a string of its own and failing.
		name: "propertyNames",
		schema: func(k int) string {
			return `{"allOf":[` + repeatJoin(k, func(int) string { return `{"propertyNames":{"maxLength":1}}` }) + `]}`
		},
		payload: func(int) string { return fill("{", func(i int) string { return `"` + keyName(i) + `":0` }, "}") },
	},
	{
		// An enum of k objects of 20 numbers, and a payload object equal
		// to each but in its last number.
		name: "enum-objects",
		schema: func(k int) string {
			obj := func(j int) string {
				return "{" + repeatJoin(20, func(i int) string {
					if i == 19 {
						return fmt.Sprintf(`"f%d":%d`, i, j)
					}
					return fmt.Sprintf(`"f%d":%d.5`, i, i)
				}) + "}"
			}
			return `{"properties":{"a":{"enum":[` + repeatJoin(k, obj) + `]}}}`
		},
		payload: func(int) string {
			return `{"a":{` + repeatJoin(20, func(i int) string {
				if i == 19 {
					return fmt.Sprintf(`"f%d":-1`, i)
				}
				return fmt.Sprintf(`"f%d":%d.5`, i, i)
			}) + `}}`
		},
	},
	{
		// if/then/else nested k deep at each of many elements, every
		// condition numeric.
		name: "if-then-else-items",
		schema: func(k int) string {
			s := `{"type":"string"}`
			for i := range k {
				s = fmt.Sprintf(`{"if":{"minimum":%d},"then":{"multipleOf":3},"else":%s}`, i, s)
			}
			return `{"properties":{"a":{"maxItems":50,"items":` + s + `}}}`
		},
		payload: func(int) string { return `{"a":[` + repeatJoin(50, func(int) string { return "-1" }) + `]}` },
	},
}

// largestK is the largest knob Compile accepts for sh, searched up to
// 1<<14, with its schema.
func largestK(t testing.TB, sh worstShape) (int, *Schema) {
	t.Helper()
	accept := func(k int) *Schema {
		var doc map[string]any
		if err := json.Unmarshal([]byte(sh.schema(k)), &doc); err != nil {
			t.Fatalf("%s at %d: %v", sh.name, k, err)
		}
		s, err := Compile(doc)
		if err != nil {
			return nil
		}
		return s
	}
	if accept(1) == nil {
		t.Fatalf("%s: refused at k=1", sh.name)
	}
	lo, hi := 1, 2
	for hi <= 1<<14 && accept(hi) != nil {
		lo, hi = hi, hi*2
	}
	for hi-lo > 1 {
		if mid := (lo + hi) / 2; accept(mid) != nil {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, accept(lo)
}

func worstPayload(t testing.TB, sh worstShape, k int) map[string]any {
	t.Helper()
	src := sh.payload(k)
	p, canonical, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("%s: payload: %v", sh.name, err)
	}
	_ = canonical
	return p
}

// BenchmarkWorstSchemas checks the worst payload against each worst
// accepted schema: ns/op (wall), cpu-ns/op (this process's CPU, the
// collector's included: what a busy shared machine does not inflate),
// B/op. Rerun: go test -run NONE -bench WorstSchemas -benchtime 200x
// -count 5 ./internal/payload/
func BenchmarkWorstSchemas(b *testing.B) {
	for _, sh := range worstShapes {
		b.Run(sh.name, func(b *testing.B) {
			k, s := largestK(b, sh)
			p := worstPayload(b, sh, k)
			cpu := measureCheck(b, s, p, 0)
			b.ReportMetric(float64(k), "k")
			b.ReportMetric(s.Cost(), "units")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/s.Cost(), "cpu-ns/unit")
		})
	}
}

// Every worst accepted schema, on its worst payload, allocates at most
// 1 MiB a check (the other half of the promise, time, is
// BenchmarkWorstSchemas's: a test of time on a shared machine would
// fail for the machine's sake). Not under the race detector, whose
// sync.Pool drops the regexp machines it holds (see raceEnabled).
func TestWorstSchemasStayWithinAMebibyte(t *testing.T) {
	for _, sh := range worstShapes {
		k, s := largestK(t, sh)
		p := worstPayload(t, sh, k)
		if v := s.Check(p); (v == nil) != sh.passes {
			t.Errorf("%s: the worst payload: %v; want passes %v", sh.name, v, sh.passes)
		}
		const runs = 20
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range runs {
			s.Check(p)
		}
		runtime.ReadMemStats(&after)
		perCheck := (after.TotalAlloc - before.TotalAlloc) / runs
		t.Logf("%-22s k=%-5d bound %4.0f units, %7d B a check", sh.name, k, s.Cost(), perCheck)
		if perCheck > 1<<20 && !raceEnabled {
			t.Errorf("%s (k=%d): %d bytes a check, over 1 MiB", sh.name, k, perCheck)
		}
	}
}
