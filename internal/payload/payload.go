// Package payload decodes an order's body strictly and checks its
// payload, the shop's own JSON object (item, size, quantity, the price it
// showed) that sluice keeps with the order and hands to the backend in
// canonical form, against a sale's optional JSON Schema
// (payload_schema). It does no I/O: a schema's $ref may name only the
// schema itself, never a file or a URL.
package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// MaxBytes bounds a payload, in canonical form.
const MaxBytes = 2 << 10

// MaxSchemaBytes bounds a sale's payload_schema, as JSON: it is stored in
// the sale's stream metadata and held by every gate.
const MaxSchemaBytes = 16 << 10

// ErrBadSchema is returned by Compile for a schema that is not one.
var ErrBadSchema = errors.New("payload: bad schema")

// Schema is a compiled payload_schema. The zero value is not usable; a nil
// *Schema accepts every payload. It is safe for concurrent use.
type Schema struct {
	sch *jsonschema.Schema
	src string // the schema as JSON, to tell a changed one apart
	// cost bounds checking one payload (see Cost).
	cost float64
	// broken, when set, refuses every payload (RefuseAll).
	broken error
}

// RefuseAll is a schema that refuses every payload, saying err: for a
// sale whose schema this gate cannot compile, so that its orders are
// refused rather than taken unchecked.
func RefuseAll(err error) *Schema { return &Schema{broken: err} }

const schemaURL = "sluice:payload_schema"

// Compile compiles a sale's payload_schema; a nil or empty doc is no
// schema (nil, nil). A schema is refused (ErrBadSchema) when it is not
// one, names a file or URL, uses $dynamicRef or $recursiveRef, has a
// $ref cycle that does not descend into the payload, or could cost
// more than CostBudget to check one payload (ErrTooCostly): see cost.go.
func Compile(doc map[string]any) (*Schema, error) { return compile(doc, CostBudget) }

// compile is Compile with another budget: the tests that measure what
// the model's units cost compile schemas over it.
func compile(doc map[string]any, budget float64) (*Schema, error) {
	if len(doc) == 0 {
		return nil, nil
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSchema, err)
	}
	if len(raw) > MaxSchemaBytes {
		return nil, fmt.Errorf("%w: %d bytes; at most %d", ErrBadSchema, len(raw), MaxSchemaBytes)
	}
	// Numbers as json.Number, as the library wants them.
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSchema, err)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(noLoader{})
	c.UseRegexpEngine(compilePattern)
	if err := c.AddResource(schemaURL, v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSchema, err)
	}
	sch, err := c.Compile(schemaURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSchema, err)
	}
	prepare(sch)
	bound, an, err := price(sch)
	switch {
	case err != nil:
		return nil, err
	case bound > budget:
		return nil, costly(bound, an)
	}
	return &Schema{sch: sch, src: string(raw), cost: bound}, nil
}

// Cost is the most checking one payload against s can cost, in the
// units of CostBudget (see cost.go).
func (s *Schema) Cost() float64 {
	if s == nil {
		return 0
	}
	return s.cost
}

// Same reports whether s was compiled from doc: a gate recompiles a
// sale's schema only when it changed.
func (s *Schema) Same(doc map[string]any) bool {
	if s == nil || len(doc) == 0 {
		return s == nil && len(doc) == 0
	}
	raw, err := json.Marshal(doc)
	return err == nil && string(raw) == s.src
}

// noLoader refuses every $ref outside the schema: a sale's settings never
// make a gate read a file or call a URL.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("payload_schema may not refer to %s: only to itself (#/...)", url)
}

// Violation is why a payload does not match its sale's schema.
type Violation struct {
	// Path is a JSON pointer into the order body to the failing value,
	// e.g. /payload/quantity.
	Path string
	// Message says what is wrong there.
	Message string
}

func (v *Violation) Error() string { return v.Path + ": " + v.Message }

// Check validates a payload, the value tree Decode made of it (nil when
// the order has none), against s: the very tree whose canonical bytes
// the ledger keeps. An order without a payload is checked as an empty
// object, so that a schema's required properties hold.
func (s *Schema) Check(p map[string]any) *Violation {
	if s == nil {
		return nil
	}
	if s.broken != nil {
		return &Violation{Path: "/payload", Message: "this gate cannot check the sale's payload_schema: " + s.broken.Error()}
	}
	if p == nil {
		p = map[string]any{}
	}
	err := s.sch.Validate(p)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &Violation{Path: "/payload", Message: err.Error()}
	}
	// The deepest first cause names the value at fault.
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	path := "/payload"
	for _, tok := range ve.InstanceLocation {
		path += "/" + strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1")
	}
	return &Violation{Path: path, Message: ve.ErrorKind.LocalizedString(message.NewPrinter(language.English))}
}

// Object takes a payload decoded within an order body (a Member of
// Decode's Doc): it must be a JSON object of at most MaxBytes in
// canonical form. It returns the object, the tree Check takes.
func Object(v any, canonical []byte) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("payload must be a JSON object")
	}
	if len(canonical) > MaxBytes {
		return nil, fmt.Errorf("payload is %d bytes in canonical form; at most %d", len(canonical), MaxBytes)
	}
	return m, nil
}

// Parse decodes a payload given alone, as Decode does (at most MaxDepth
// levels), and takes it as Object does. It returns the tree and its
// canonical bytes.
func Parse(raw []byte) (map[string]any, []byte, error) {
	doc, err := Decode(raw, MaxDepth)
	if err != nil {
		return nil, nil, err
	}
	m, err := Object(doc.Value, doc.Canonical)
	if err != nil {
		return nil, nil, err
	}
	return m, doc.Canonical, nil
}
