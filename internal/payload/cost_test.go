package payload_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"sluice/internal/payload"
)

// compileJSON compiles a schema written as JSON, as the admin API reads
// it.
func compileJSON(t testing.TB, src string) (*payload.Schema, error) {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	return payload.Compile(doc)
}

// anyOfChain is issue 27's schema: anyOf over $refs, two wide, n deep;
// one order {"x":1} against it cost 3–18 s and up to 3.6 GB.
func anyOfChain(n int) string {
	defs := make([]string, n)
	for i := range defs {
		defs[i] = fmt.Sprintf(`"a%d":{"anyOf":[{"$ref":"#/$defs/a%d"},{"$ref":"#/$defs/a%d"}]}`, i, i+1, i+1)
	}
	return fmt.Sprintf(`{"$defs":{%s,"a%d":{"type":"string"}},"$ref":"#/$defs/a0"}`, strings.Join(defs, ","), n)
}

// A schema whose check can blow up is refused when it is set, saying
// why and where; so is one the validator would refuse every order with.
func TestCompileRefusesCostlySchemas(t *testing.T) {
	if n := len(anyOfChain(24)); n < 1400 || n > 1700 {
		t.Fatalf("the issue's schema is 1.5 KB; this one %d bytes", n)
	}
	for _, c := range []struct{ name, schema, want string }{
		{"anyOf over $refs, 24 deep (issue 27)", anyOfChain(24), "too costly to check"},
		{"anyOf over $refs, 5 deep", anyOfChain(5), "most of it at #/$defs/a0"},
		{"oneOf of allOf fan-out", `{"oneOf":[{"allOf":[{"$ref":"#/$defs/x"},{"$ref":"#/$defs/x"},{"$ref":"#/$defs/x"}]},{"allOf":[{"$ref":"#/$defs/x"},{"$ref":"#/$defs/x"}]}],"$defs":{"x":{"anyOf":[{"$ref":"#/$defs/y"},{"$ref":"#/$defs/y"},{"$ref":"#/$defs/y"}]},"y":{"if":{"$ref":"#/$defs/z"},"then":{"$ref":"#/$defs/z"},"else":{"$ref":"#/$defs/z"}},"z":{"not":{"dependentSchemas":{"a":{"$ref":"#/$defs/w"},"b":{"$ref":"#/$defs/w"}}}},"w":{"properties":{"p":{"items":{"enum":[1,2,3,4,5,6,7,8]}}}}}}`, "too costly to check"},
		{"items checked on every element of an unbounded array", `{"properties":{"tags":{"type":"array","items":{"type":"integer","minimum":1}}}}`, "maxItems on an array"},
		{"recursion that multiplies at each level", `{"$defs":{"n":{"anyOf":[{"properties":{"a":{"$ref":"#/$defs/n"}}},{"properties":{"a":{"$ref":"#/$defs/n"}}}]}},"$ref":"#/$defs/n"}`, "too costly to check"},
		{"a $ref cycle", `{"$defs":{"a":{"$ref":"#/$defs/b"},"b":{"anyOf":[{"$ref":"#/$defs/a"}]}},"$ref":"#/$defs/a"}`, "a $ref cycle that does not descend into the payload: #/$defs/a → #/$defs/b → #/$defs/b/anyOf/0 → #/$defs/a"},
		{"a $ref to itself", `{"$ref":"#"}`, "a $ref cycle"},
		{"allOf back to the root", `{"allOf":[{"$ref":"#"}]}`, "a $ref cycle"},
		{"$dynamicRef", `{"$dynamicAnchor":"n","properties":{"a":{"$dynamicRef":"#n"}}}`, "$dynamicRef is not allowed"},
		{"$recursiveRef", `{"$schema":"https://json-schema.org/draft/2019-09/schema","$recursiveAnchor":true,"properties":{"a":{"$recursiveRef":"#"}}}`, "$recursiveRef is not allowed"},
		{"the meta-schema, which uses $dynamicRef", `{"$ref":"https://json-schema.org/draft/2020-12/schema"}`, "$dynamicRef is not allowed"},
		{"format regex, asserted in draft-07", `{"$schema":"http://json-schema.org/draft-07/schema#","properties":{"re":{"type":"string","format":"regex"}}}`, `format "regex" is not allowed`},
		{"a pattern scanning every string", `{"additionalProperties":{"pattern":"(a|b|ab|ba|aab|abb|bab|aba|bb|aa)*c"}}`, "too costly to check"},
	} {
		_, err := compileJSON(t, c.schema)
		if !errors.Is(err, payload.ErrBadSchema) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want ErrBadSchema saying %q", c.name, err, c.want)
		}
	}
	if _, err := compileJSON(t, anyOfChain(24)); !errors.Is(err, payload.ErrTooCostly) {
		t.Errorf("the issue's schema: %v, want ErrTooCostly", err)
	}
}

// The schemas a shop writes are accepted: flat objects, enums of
// strings, patterns, arrays bounded by maxItems, recursion that
// descends into the payload.
func TestCompileAcceptsShopSchemas(t *testing.T) {
	for name, src := range map[string]string{
		"flat": `{"type":"object","required":["sku","quantity"],"additionalProperties":false,
			"properties":{"sku":{"type":"string","pattern":"^[A-Z0-9-]{1,32}$"},"size":{"enum":["S","M","L","XL"]},
			"quantity":{"type":"integer","minimum":1,"maximum":5},"price_shown":{"type":"string","maxLength":32},"gift":{"type":"boolean"}}}`,
		"cart": `{"properties":{"items":{"type":"array","maxItems":20,"items":{"type":"object","required":["sku","qty"],
			"properties":{"sku":{"type":"string","pattern":"^[A-Z0-9-]+$"},"qty":{"type":"integer","minimum":1,"maximum":9}},"additionalProperties":false}}}}`,
		"tags":          `{"properties":{"tags":{"type":"array","maxItems":10,"uniqueItems":true,"items":{"enum":["gift","express","fragile"]}}}}`,
		"a few choices": `{"oneOf":[{"required":["sku"],"properties":{"sku":{"const":"TEE-1"},"size":{"enum":["S","M","L"]}}},{"required":["voucher"],"properties":{"voucher":{"type":"string","maxLength":16}}}]}`,
		"if/then":       `{"if":{"properties":{"gift":{"const":true}}},"then":{"required":["message"],"properties":{"message":{"type":"string","maxLength":140}}}}`,
		"linked list":   `{"$defs":{"node":{"type":"object","properties":{"next":{"$ref":"#/$defs/node"},"label":{"type":"string","maxLength":8}}}},"$ref":"#/$defs/node"}`,
		"any object":    `{"type":"object"}`,
		"2019-09":       `{"$schema":"https://json-schema.org/draft/2019-09/schema","allOf":[{"properties":{"a":{"type":"string"}}}],"unevaluatedProperties":false}`,
		"draft-07":      `{"$schema":"http://json-schema.org/draft-07/schema#","properties":{"email":{"type":"string","format":"email","maxLength":64}}}`,
	} {
		s, err := compileJSON(t, src)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if c := s.Cost(); c <= 0 || c > payload.CostBudget {
			t.Errorf("%s: cost %v, want within (0, %d]", name, c, payload.CostBudget)
		}
	}
}
