package payload

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// BenchmarkCostUnits measures what the cost model's weights stand for
// (cost.go): each case applies one keyword to n values; cpu-ns/elem and
// B/op ÷ n, over those of "unit", are the keyword's weight.
func BenchmarkCostUnits(b *testing.B) {
	const n = 1000
	zeros := jsonList("0", n)
	deep := func(inner string) string { // 30 arrays deep, then inner
		return `{"a":` + strings.Repeat("[", 30) + inner + strings.Repeat("]", 30) + `}`
	}
	deepSchema := func(leaf string) string {
		s := leaf
		for range 31 {
			s = `{"items":` + s + `}`
		}
		return `{"properties":{"a":` + s + `}}`
	}
	obj := func(k int) string {
		var m []string
		for i := range k {
			m = append(m, fmt.Sprintf(`"%d":0`, i))
		}
		return "{" + strings.Join(m, ",") + "}"
	}
	for _, c := range []struct {
		name, schema, payload string
		elems                 int
	}{
		{"unit", `{"properties":{"a":{"items":{}}}}`, `{"a":` + zeros + `}`, n},
		{"fail", `{"properties":{"a":{"items":{"type":"string"}}}}`, `{"a":` + zeros + `}`, n},
		{"false", `{"properties":{"a":{"items":false}}}`, `{"a":` + zeros + `}`, n},
		{"fail-deep", deepSchema(`{"type":"string"}`), deep(jsonList("0", 900)), 900},
		{"pass-deep", deepSchema(`{}`), deep(jsonList("0", 900)), 900},
		{"integer", `{"properties":{"a":{"items":{"type":"integer"}}}}`, `{"a":` + zeros + `}`, n},
		{"number", `{"properties":{"a":{"items":{"minimum":0}}}}`, `{"a":` + zeros + `}`, n},
		{"equals-10-numbers", `{"properties":{"a":{"items":{"enum":[1,2,3,4,5,6,7,8,9,10]}}}}`, `{"a":` + zeros + `}`, n},
		{"equals-10-strings", `{"properties":{"a":{"items":{"enum":["a","b","c","d","e","f","g","h","i","j"]}}}}`, `{"a":` + jsonList(`""`, 600) + `}`, 600},
		{"keys-250", `{"properties":{"x":{}}}`, obj(250), 250},
		{"uneval-250", `{"allOf":[{"properties":{"x":{}}}],"unevaluatedProperties":true}`, obj(250), 250},
		{"propertyNames-250", `{"propertyNames":{}}`, obj(250), 250},
		{"patternKey-250", `{"patternProperties":{"^z{5}$":{}}}`, obj(250), 250},
		{"patternKey-nfa-250", `{"patternProperties":{"(a|b|ab|ba)*z":{}}}`, obj(250), 250},
		{"format-ipv6-2000", `{"$schema":"http://json-schema.org/draft-07/schema#","properties":{"s":{"format":"ipv6"}}}`, `{"s":"` + strings.Repeat("1:", 1000) + `"}`, 2000},
		{"scan-2000", `{"properties":{"s":{"minLength":1}}}`, `{"s":"` + strings.Repeat("a", 2000) + `"}`, 2000},
		{"regexp-nfa-2000", `{"properties":{"s":{"pattern":"(a|b|ab|ba)*c"}}}`, `{"s":"` + strings.Repeat("ab", 1000) + `"}`, 2000},
		{"regexp-nfa-big-2000", `{"properties":{"s":{"pattern":"(?:[ab]{1,10}){1,5}c"}}}`, `{"s":"` + strings.Repeat("ab", 1000) + `"}`, 2000},
		{"regexp-onepass-2000", `{"properties":{"s":{"pattern":"^[a-z]*$"}}}`, `{"s":"` + strings.Repeat("ab", 1000) + `"}`, 2000},
		{"unique-2000", `{"properties":{"a":{"uniqueItems":true}}}`, `{"a":[` + distinct(400) + `]}`, 2000},
	} {
		b.Run(c.name, func(b *testing.B) {
			var doc map[string]any
			if err := json.Unmarshal([]byte(c.schema), &doc); err != nil {
				b.Fatal(err)
			}
			s, err := compile(doc, math.Inf(1))
			if err != nil {
				b.Fatal(err)
			}
			p, _, err := Parse([]byte(c.payload))
			if err != nil {
				b.Fatal(err)
			}
			measureCheck(b, s, p, c.elems)
			b.ReportMetric(s.Cost()/float64(c.elems), "units/elem")
			if pt, ok := s.sch.Properties["s"]; ok && pt.Pattern != nil {
				b.ReportMetric(float64(pt.Pattern.(*pattern).insts), "insts")
			}
		})
	}
}

func jsonList(item string, n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + "]"
}

// measureCheck runs Check b.N times and reports the CPU time each costs
// (the process's, so what other processes take on a shared machine does
// not count; the garbage collector's does), and per elem.
func measureCheck(b *testing.B, s *Schema, p map[string]any, elems int) time.Duration {
	b.ReportAllocs()
	start := processCPU()
	for b.Loop() {
		s.Check(p)
	}
	cpu := processCPU() - start
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	if elems > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/float64(elems), "cpu-ns/elem")
	}
	return cpu
}

// distinct is n different numbers, for uniqueItems to find no repeat.
func distinct(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d", 1000+i)
	}
	return b.String()
}
