package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// fuzzSchemas are checked against every payload FuzzPayload takes: a
// shop's, and ones that use what prepare changes (uniqueItems, items
// under maxItems, a pattern under maxLength).
var fuzzSchemas = []string{
	`{"type":"object","required":["sku"],"properties":{"sku":{"type":"string","pattern":"^[A-Z0-9-]{1,16}$"},
		"quantity":{"type":"integer","minimum":1,"maximum":2},"size":{"enum":["S","M","L"]},"price":{"type":"number","exclusiveMinimum":0,"multipleOf":0.01}}}`,
	`{"properties":{"tags":{"maxItems":4,"uniqueItems":true,"items":{"type":"string","maxLength":3,"pattern":"^[a-z]+$"}},
		"n":{"const":1},"o":{"enum":[{"a":[1,2]},[1,"x"],null,true,1.5]}},"additionalProperties":{"maxItems":2,"prefixItems":[{"type":"number"}],"items":{"type":"boolean"}}}`,
	`{"$schema":"http://json-schema.org/draft-07/schema#","properties":{"a":{"maxItems":3,"items":{"type":"integer"},"uniqueItems":true},
		"b":{"items":[{"type":"string"}],"additionalItems":{"type":"null"},"maxItems":3}}}`,
	`{"$schema":"https://json-schema.org/draft/2019-09/schema","properties":{"u":{"maxItems":3,"items":{"type":"integer"},"unevaluatedItems":false},
		"v":{"maxItems":4,"items":[{"type":"string"}],"additionalItems":{"type":"integer"},"unevaluatedItems":false}}}`,
	`{"properties":{"w":{"maxItems":3,"prefixItems":[{"type":"string"}],"items":{"type":"integer"},"unevaluatedItems":false,"contains":{"type":"integer"}},
		"x":{"maxItems":2,"allOf":[{"prefixItems":[true]}],"unevaluatedItems":{"type":"boolean"}}}}`,
}

func fuzzCompiled(f *testing.F) []*Schema {
	f.Helper()
	var out []*Schema
	for _, src := range fuzzSchemas {
		var doc map[string]any
		if err := json.Unmarshal([]byte(src), &doc); err != nil {
			f.Fatal(err)
		}
		s, err := compile(doc, math.Inf(1)) // some are over the budget: what they check is the point
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// FuzzPayload: decode → schema check → canonical bytes. Whatever the
// input, the decoder either refuses it with a *DecodeError (or the
// payload's own reason) or returns a tree whose canonical bytes are
// valid UTF-8 JSON of at most MaxBytes that decode to the same tree and
// the same bytes again (idempotent), that encoding/json reads as the
// same values as the input, and that every schema judges as it judged
// the first tree.
func FuzzPayload(f *testing.F) {
	for _, s := range []string{
		`{"sku":"TEE-1","quantity":1}`, `{"sku":"TEE-1","quantity":100,"quantity":1}`, `{"n":"\u0000"}`,
		"{\"n\":\"\xff\"}", `{"n":"\ud800"}`, `{"n":1e999999}`, `{"n":-1e400}`, `{"n":1e-400}`,
		`{"tags":["a","b","a"]}`, `{"n":[1.0,1,1e0,-0,0.10000000000000001]}`, `{"\u00e9\/":"\ud83d\ude00"}`,
	} {
		f.Add([]byte(s))
	}
	schemas := fuzzCompiled(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		tree, canonical, err := Parse(data)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) && tree != nil {
				t.Fatalf("refused with %v but returned a tree", err)
			}
			return
		}
		if !utf8.Valid(canonical) || !json.Valid(canonical) || len(canonical) > MaxBytes {
			t.Fatalf("canonical form %q of %q: not valid UTF-8 JSON of at most %d bytes", canonical, data, MaxBytes)
		}
		again, canonical2, err := Parse(canonical)
		if err != nil || !bytes.Equal(canonical, canonical2) || !reflect.DeepEqual(tree, again) {
			t.Fatalf("canonical form %q decodes to %q (%v), another tree or error", canonical, canonical2, err)
		}
		// encoding/json reads the input and the canonical form as the
		// same values (numbers compared by value).
		for _, src := range [][]byte{data, canonical} {
			dec := json.NewDecoder(bytes.NewReader(src))
			dec.UseNumber()
			var std any
			if err := dec.Decode(&std); err != nil {
				t.Fatalf("encoding/json refuses %q, which the decoder took: %v", src, err)
			}
			if !reflect.DeepEqual(normalize(t, std), any(tree)) {
				t.Fatalf("encoding/json reads %q as %v; the decoder as %v", src, std, tree)
			}
		}
		for i, s := range schemas {
			v1, v2 := s.Check(tree), s.Check(again)
			if (v1 == nil) != (v2 == nil) {
				t.Fatalf("schema %d judges %q and its canonical form differently: %v, %v", i, data, v1, v2)
			}
		}
	})
}

// normalize writes encoding/json's numbers in canonical form.
func normalize(t *testing.T, v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = normalize(t, x)
		}
	case []any:
		for i, x := range v {
			v[i] = normalize(t, x)
		}
	case json.Number:
		n, err := canonicalNumber([]byte(v))
		if err != nil {
			t.Fatalf("encoding/json took a number the decoder refuses: %s", v)
		}
		return json.Number(n)
	}
	return v
}

// FuzzPrepareKeepsVerdicts: what prepare changes in a compiled schema
// to bound its cost (uniqueItems by canonical keys, items under maxItems
// checked only within it, a pattern under maxLength not scanned past
// 4 × it) changes no verdict: the library alone, on the same tree, says
// the same.
func FuzzPrepareKeepsVerdicts(f *testing.F) {
	for _, s := range []string{
		`{"tags":["a","b","a"]}`, `{"tags":["ab","abcd"]}`, `{"tags":[1,1.0]}`, `{"tags":["é","e"]}`,
		`{"a":[1,2,3,4]}`, `{"a":[1,1]}`, `{"b":["x",null,null]}`, `{"b":["x",1]}`, `{"x":[1,true,true]}`,
		`{"o":{"a":[1,2]}}`, `{"o":[1,"x"]}`, `{"tags":[{"a":1,"b":2},{"b":2,"a":1}]}`,
	} {
		f.Add([]byte(s))
	}
	prepared := fuzzCompiled(f)
	var plain []*jsonschema.Schema
	for _, src := range fuzzSchemas {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(src)))
		if err != nil {
			f.Fatal(err)
		}
		c := jsonschema.NewCompiler()
		if err := c.AddResource(schemaURL, v); err != nil {
			f.Fatal(err)
		}
		s, err := c.Compile(schemaURL)
		if err != nil {
			f.Fatal(err)
		}
		plain = append(plain, s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tree, _, err := Parse(data)
		if err != nil {
			return
		}
		for i := range prepared {
			gate := prepared[i].Check(tree) == nil
			library := plain[i].Validate(tree) == nil
			if gate != library {
				t.Fatalf("schema %d on %s: the gate says valid %v, the library alone %v", i, data, gate, library)
			}
		}
	})
}
