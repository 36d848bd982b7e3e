package payload_test

import (
	"errors"
	"strings"
	"testing"

	"sluice/internal/payload"
)

func schema(t *testing.T) *payload.Schema {
	t.Helper()
	s, err := payload.Compile(map[string]any{
		"type":     "object",
		"required": []any{"sku", "quantity"},
		"properties": map[string]any{
			"sku":      map[string]any{"type": "string", "pattern": "^[A-Z0-9-]+$"},
			"quantity": map[string]any{"type": "integer", "minimum": 1, "maximum": 2},
			"options":  map[string]any{"type": "object", "properties": map[string]any{"size": map[string]any{"enum": []any{"S", "M", "L"}}}},
		},
		"additionalProperties": false,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCheck(t *testing.T) {
	s := schema(t)
	for _, c := range []struct {
		body, path string
	}{
		{`{"sku":"TEE-1","quantity":2}`, ""},
		{`{"sku":"TEE-1","quantity":2,"options":{"size":"M"}}`, ""},
		{`{"sku":"TEE-1","quantity":3}`, "/payload/quantity"},
		{`{"sku":"TEE-1","quantity":1.5}`, "/payload/quantity"},
		{`{"sku":"tee","quantity":1}`, "/payload/sku"},
		{`{"sku":"TEE-1","quantity":1,"options":{"size":"XL"}}`, "/payload/options/size"},
		{`{"sku":"TEE-1","quantity":1,"price":3}`, "/payload"},
		{`{"quantity":1}`, "/payload"},
		{``, "/payload"}, // no payload: checked as {}, which lacks sku
	} {
		var tree map[string]any
		if c.body != "" {
			var err error
			if tree, _, err = payload.Parse([]byte(c.body)); err != nil {
				t.Fatalf("%s: %v", c.body, err)
			}
		}
		v := s.Check(tree)
		switch {
		case c.path == "" && v != nil:
			t.Errorf("%s: refused: %v", c.body, v)
		case c.path != "" && v == nil:
			t.Errorf("%s: accepted, want refused at %s", c.body, c.path)
		case v != nil && (v.Path != c.path || v.Message == ""):
			t.Errorf("%s: refused at %s (%q), want %s", c.body, v.Path, v.Message, c.path)
		}
	}
	var none *payload.Schema
	if v := none.Check(map[string]any{"anything": 1}); v != nil {
		t.Errorf("no schema refused a payload: %v", v)
	}
}

func TestCompileRefusesBadSchemas(t *testing.T) {
	for name, doc := range map[string]map[string]any{
		"bad type":    {"type": "thing"},
		"remote ref":  {"$ref": "https://example.com/s.json"},
		"file ref":    {"$ref": "file:///etc/passwd"},
		"bad pattern": {"type": "string", "pattern": "("},
		"too large":   {"description": strings.Repeat("x", payload.MaxSchemaBytes)},
	} {
		if _, err := payload.Compile(doc); !errors.Is(err, payload.ErrBadSchema) {
			t.Errorf("%s: err %v, want ErrBadSchema", name, err)
		}
	}
	if s, err := payload.Compile(nil); s != nil || err != nil {
		t.Errorf("no schema: %v %v", s, err)
	}
}

func TestParse(t *testing.T) {
	tree, got, err := payload.Parse([]byte("{ \"sku\" : \"A\",\n \"n\": 1 }"))
	if err != nil || string(got) != `{"sku":"A","n":1}` || tree["sku"] != "A" {
		t.Errorf("canonical: %s %v %v", got, tree, err)
	}
	for _, bad := range []string{`[1]`, `"x"`, `1`, `null`, `{`, `{"a":"` + strings.Repeat("x", payload.MaxBytes) + `"}`} {
		if _, _, err := payload.Parse([]byte(bad)); err == nil {
			t.Errorf("%.40s: accepted", bad)
		}
	}
}
