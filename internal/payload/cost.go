package payload

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// A payload_schema is checked on every order, on the hot path, for
// anyone who can reach the gate: its cost must be bounded when it is
// set, not found out when an order costs seconds (issue 27: 1.5 KiB of
// anyOf over $refs made one order {"x":1} cost 3–18 s and 3.6 GB).
// Compile bounds it statically. The promise: a schema Compile accepts
// checks any payload of at most MaxBytes, nested at most MaxDepth
// levels, within CostBudget units, which BenchmarkWorstSchemas measures
// at under 1 ms of CPU and 1 MiB (docs/performance.md).
//
// The validator evaluates schema objects at payload nodes. An
// evaluation applies some subschemas at the same node ($ref, allOf,
// anyOf, oneOf, not, if/then/else, dependentSchemas) and some at the
// node's children (properties, patternProperties, additionalProperties,
// unevaluatedProperties, propertyNames on the keys, prefixItems, items,
// contains, unevaluatedItems). For each schema S and each number d of
// levels the payload may still nest, the analysis finds a bound: at any
// node v, evaluating S costs at most
//
//	a + r·b(v) + w·b(v) + the items of a menu that v holds
//
// where b(v) is v's size in canonical bytes:
//   - a is fixed: S's own cost per evaluation, e(S), and its same-node
//     schemas' a;
//   - r is per byte: what S reads of v (a pattern, uniqueItems) and what
//     its children may cost per byte when they can be many (elements,
//     keys no property names: a child c takes b(c) bytes and o bytes of
//     syntax only v pays for, a comma or "key":, so A + R·b(c) over
//     b(c) + o, which is largest at b(c) = 1 or as b(c) grows);
//   - w is what every evaluation at an object does per key (walks it,
//     records it for unevaluatedProperties, matches it against the
//     patternProperties, validates it for propertyNames), per byte of
//     the keys' own syntax: those bytes are v's own, so w combines by
//     maximum down the levels rather than adding up;
//   - the menu is what v's named properties (and prefixItems positions,
//     and its short keys) cost, each only when v holds that member,
//     which takes at least len(key)+5 of v's bytes: once per
//     evaluation, not per byte, so a flat object's properties cost
//     their sum however large the payload. Members share no bytes, so
//     what they can cost within x bytes is at most a fractional
//     knapsack's best, a concave curve F(x); a member's own curve joins
//     its parent's; two schemas at one node may price the same members,
//     so their curves add.
//
// At d = 0 the payload nests no further and children cost nothing. The
// payload is evaluated at d = MaxDepth, and the bound is its a, plus r
// and w times MaxBytes, plus as much of its menu as fits in MaxBytes.
//
// A cycle of same-node subschemas ($ref back to itself without
// descending into the payload) is refused: the validator refuses every
// order with it. A cycle that descends (properties → $ref "#") is
// bounded by the depth, and priced level by level. $dynamicRef and
// $recursiveRef are refused: where they lead depends on the path taken,
// which a static bound cannot follow; so is format "regex" where it is
// asserted (drafts before 2019-09): it compiles each order's string.
//
// The weights are the library's costs, measured by BenchmarkCostUnits.

// CostBudget is the most a payload_schema may cost to check one payload,
// in the units of the weights below: 1600 units are 0.8 ms of CPU at
// what a unit measures, a margin under 1 ms for a machine busier than
// when it was measured (CPU times on the 2 shared cores varied by up to
// 1.3× between rounds).
const CostBudget = 1600

// The weights of the cost model, in units. Each is at least what
// BenchmarkCostUnits measures for it, over what "unit" (an evaluation
// that passes) measures: 475–505 ns of CPU, the garbage collector's
// included, and 211 bytes. Measured on a busy machine, they drift by a
// few tenths from one sitting to the next.
const (
	// costEval is one evaluation of a schema object: the validator's
	// scope, its record of evaluated properties, its place.
	costEval = 1.0
	// costFail is the error an evaluation that fails makes (measured
	// 0.94–1.4 time, 0.92 bytes), plus costFailDepth for each level of
	// the payload above it: the error copies the path (at 31 levels,
	// 2.7–3.4 time and 3.2 bytes in all).
	costFail      = 1.5
	costFailDepth = 0.1
	// costFalse is the error of the schema false, which runs no keyword
	// (measured 0.5–0.6 beyond the evaluation).
	costFalse = 0.8
	// costNumber is a numeric keyword, or type integer: the library
	// parses the number into a big.Rat (fmt.Sprint, then SetString)
	// each time (measured 1.6 for integer, 2.0 for minimum; numbers
	// slow more than the rest on a busy machine).
	costNumber = 2.5
	// costEquals is comparing one number of an enum or const (two
	// big.Rats; measured 3.9); costEqualsCheap one string, boolean or
	// null (0.015).
	costEquals      = 5.0
	costEqualsCheap = 0.05
	// costName is one name of required, dependentRequired or
	// dependencies: a map look-up.
	costName = 0.05
	// costKey is an evaluation's look at one of an object's keys: every
	// evaluation at an object walks its keys (0.14).
	costKey = 0.15
	// costUneval is the record of unevaluated keys or items, per key
	// or item per evaluation, in a schema that uses unevaluated* (0.93).
	costUneval = 1.0
	// costPropertyNames is the extra of validating a key as a string
	// of its own, a fresh validator (0.5).
	costPropertyNames = 1.0
	// costRegexpByte is matching one byte against one instruction of a
	// compiled pattern: Go's regexp is linear, bytes × instructions at
	// worst, in its NFA (measured 0.029–0.031 with 13 and 102
	// instructions); costRegexpMatch is a match's own cost whatever the
	// string (1.1 on a 2-byte key for a pattern that may match anywhere,
	// costRegexpAnchored 0.15 for one anchored at the start).
	costRegexpByte     = 1.0 / 25
	costRegexpMatch    = 1.4
	costRegexpAnchored = 0.3
	// costScanByte is minLength or maxLength, counting a string's runes
	// (0.0034 a byte); costFormat and costFormatByte a format, where it
	// is asserted (drafts before 2019-09), for its call and per byte
	// (on 2 KB strings made to be slow: ipv6 0.09–0.12, date, ipv4
	// 0.06, hostname 0.04, the others less).
	costScanByte   = 0.01
	costFormat     = 0.5
	costFormatByte = 0.15
	// costUniqueByte is uniqueItems, per byte of the array: this
	// package's check, one canonical key per item (0.046–0.069).
	costUniqueByte = 0.08
)

// costCap stops the sums from overflowing: anything near it is refused.
const costCap = 1e30

// ErrTooCostly is the error Compile wraps for a schema refused for what
// it could cost to check an order.
var ErrTooCostly = fmt.Errorf("%w: too costly to check", ErrBadSchema)

// analysis prices a compiled schema.
type analysis struct {
	nodes []*jsonschema.Schema
	index map[*jsonschema.Schema]int
	// same are the schemas each node applies at its own node; order
	// lists the nodes so that every one comes after those it applies.
	same  [][]int
	order []int
	// unevalProps, unevalItems: the node is evaluated where the library
	// keeps a record of unevaluated keys (items): it has
	// unevaluatedProperties (-Items), or a schema that has applies it at
	// the same node.
	unevalProps, unevalItems []bool
	// cur is each node's bound with d levels left, prev with d-1; flat
	// on a key (propertyNames), a string validated on its own.
	cur, prev, flat []bound
}

// bound is a schema's bound (see above). wh is w at the node itself,
// wc below it: the walks of same-node schemas add up, those of a node
// and of its descendants do not (other bytes), so w is max(wh, wc).
type bound struct {
	a, r   float64
	wh, wc float64
	menu   curve
}

// w is the bound's walk cost per byte.
func (b bound) w() float64 { return max(b.wh, b.wc) }

// add adds c to b: what two schemas applied at one node cost. Their
// menus may name the same members, so the curves add point by point.
func (b *bound) add(c bound) {
	b.a = min(b.a+c.a, costCap)
	b.r = min(b.r+c.r, costCap)
	b.wh = min(b.wh+c.wh, costCap)
	b.wc = min(b.wc+c.wc, costCap)
	b.menu = sum(b.menu, c.menu)
}

// total is the bound on a payload of at most MaxBytes.
func (b bound) total() float64 {
	return min(b.a+(b.r+b.w())*MaxBytes+b.menu.at(MaxBytes), costCap)
}

// price analyses root: it returns its bound in units, or an error
// saying why it is refused.
func price(root *jsonschema.Schema) (float64, *analysis, error) {
	an := &analysis{index: map[*jsonschema.Schema]int{}}
	if err := an.collect(root); err != nil {
		return 0, nil, err
	}
	if err := an.sort(); err != nil {
		return 0, nil, err
	}
	n := len(an.nodes)
	// A key, for propertyNames: a string validated on its own, as a
	// payload's root.
	an.flat = make([]bound, n)
	for _, i := range an.order {
		var b bound
		b.a, b.r, _, _ = an.local(i, 0, false)
		for _, j := range an.same[i] {
			b.add(an.flat[j])
		}
		an.flat[i] = b
	}
	an.cur, an.prev = make([]bound, n), make([]bound, n)
	for d := 0; d <= MaxDepth; d++ {
		an.cur, an.prev = an.prev, an.cur
		for _, i := range an.order {
			an.cur[i] = an.bound(i, d)
		}
	}
	return an.cur[0].total(), an, nil
}

// collect finds every schema reachable from root and what each applies
// at its own node, and refuses what cannot be priced.
func (an *analysis) collect(root *jsonschema.Schema) error {
	stack := []*jsonschema.Schema{root}
	an.add(root)
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		switch {
		case s.DynamicRef != nil:
			return fmt.Errorf("%w: %s: $dynamicRef is not allowed (where it leads depends on the path taken; use $ref)", ErrBadSchema, where(s))
		case s.RecursiveRef != nil:
			return fmt.Errorf("%w: %s: $recursiveRef is not allowed (where it leads depends on the path taken; use $ref)", ErrBadSchema, where(s))
		case s.Format != nil && s.Format.Name == "regex":
			return fmt.Errorf(`%w: %s: format "regex" is not allowed where it is asserted (drafts before 2019-09): it compiles each order's string as a regular expression, which can cost 100 ms and 80 MB`, ErrBadSchema, where(s))
		}
		for _, t := range sameNode(s) {
			if an.add(t) {
				stack = append(stack, t)
			}
		}
		for _, t := range children(s) {
			if an.add(t) {
				stack = append(stack, t)
			}
		}
	}
	an.same = make([][]int, len(an.nodes))
	for i, s := range an.nodes {
		for _, t := range sameNode(s) {
			an.same[i] = append(an.same[i], an.index[t])
		}
	}
	an.unevalProps = an.sameReach(func(s *jsonschema.Schema) bool { return s.UnevaluatedProperties != nil })
	an.unevalItems = an.sameReach(func(s *jsonschema.Schema) bool { return s.UnevaluatedItems != nil })
	return nil
}

// sameReach marks the nodes that has marks, and those they apply at
// their own node, all the way down.
func (an *analysis) sameReach(has func(*jsonschema.Schema) bool) []bool {
	marked := make([]bool, len(an.nodes))
	var stack []int
	for i, s := range an.nodes {
		if has(s) {
			marked[i] = true
			stack = append(stack, i)
		}
	}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, j := range an.same[i] {
			if !marked[j] {
				marked[j] = true
				stack = append(stack, j)
			}
		}
	}
	return marked
}

func (an *analysis) add(s *jsonschema.Schema) bool {
	if _, ok := an.index[s]; ok {
		return false
	}
	an.index[s] = len(an.nodes)
	an.nodes = append(an.nodes, s)
	return true
}

// sort orders the nodes so that each follows those it applies at its
// own node, and refuses a cycle of them.
func (an *analysis) sort() error {
	const (
		unseen = iota
		open
		done
	)
	state := make([]int, len(an.nodes))
	var path []int
	var visit func(i int) error
	visit = func(i int) error {
		switch state[i] {
		case done:
			return nil
		case open:
			j := slices.Index(path, i)
			var names []string
			for _, k := range append(path[j:], i) {
				names = append(names, where(an.nodes[k]))
			}
			return fmt.Errorf("%w: a $ref cycle that does not descend into the payload: %s (it would refuse every order)", ErrBadSchema, strings.Join(names, " → "))
		}
		state[i] = open
		path = append(path, i)
		for _, j := range an.same[i] {
			if err := visit(j); err != nil {
				return err
			}
		}
		path = path[:len(path)-1]
		state[i] = done
		an.order = append(an.order, i)
		return nil
	}
	for i := range an.nodes {
		if err := visit(i); err != nil {
			return err
		}
	}
	return nil
}

// bound is node i's bound with d levels left, from its own cost, the
// same-node schemas' (already at d) and the children's (at d-1).
func (an *analysis) bound(i, d int) bound {
	s := an.nodes[i]
	var b bound
	var short float64
	b.a, b.r, b.wh, short = an.local(i, MaxDepth-d, d > 0)
	if d > 0 {
		// The walk over the short keys and the members' own costs may
		// be of the same members: they add. A short key's member takes
		// four bytes of the node's syntax at least, which w charges at
		// a sixth of the walk each: the item is the rest.
		b.menu = sum(item(short/3, shortKeys*4), an.children(&b, s))
	}
	for _, j := range an.same[i] {
		b.add(an.cur[j])
	}
	return b
}

// local is what evaluating node i costs by itself at a node depth levels
// below the payload's root, a container or not: fixed, per byte of the
// node, per byte of its members' syntax (the walk over an object's keys;
// over an array's elements too where unevaluated* keeps a record of
// them).
func (an *analysis) local(i, depth int, container bool) (a, r, w, short float64) {
	s := an.nodes[i]
	a = costEval
	if s.Bool != nil {
		if !*s.Bool {
			a += costFalse + costFailDepth*float64(depth)
		}
		return a, 0, 0, 0
	}
	// Walks are over members: a node that can be no container (d = 0)
	// has none. A member's own syntax is its key, quoted, a colon and a
	// comma (its value is the child's): at least 6 bytes but for the
	// shortKeys members whose key is a byte or none, which the caller
	// prices as a menu item; an element's syntax is its comma.
	if container {
		member := costKey
		if an.unevalProps[i] {
			member += costUneval
		}
		// Every key is matched against every patternProperties
		// pattern, each evaluation.
		for re := range s.PatternProperties {
			member += costRegexpMatch
			if p, ok := re.(*pattern); ok {
				member += p.matchCost() - costRegexpMatch
				w += costRegexpByte * float64(p.insts) // per byte of the key
			}
		}
		if t := s.PropertyNames; t != nil {
			key := an.flat[an.index[t]]
			member += key.a + costPropertyNames
			w += key.r + key.w() // per byte of the key
		}
		w += member / 6
		short = member * shortKeys
		if an.unevalItems[i] {
			w = max(w, costUneval)
		}
	}
	if canFail(s) {
		a += costFail + costFailDepth*float64(depth)
	}
	if s.Types != nil && slices.Contains(s.Types.ToStrings(), "integer") {
		a += costNumber
	}
	if s.Minimum != nil || s.Maximum != nil || s.ExclusiveMinimum != nil || s.ExclusiveMaximum != nil {
		a += costNumber
	}
	if s.MultipleOf != nil {
		a += 2 * costNumber
	}
	if s.Enum != nil {
		for _, v := range s.Enum.Values {
			a += equalsCost(v)
		}
	}
	if s.Const != nil {
		a += equalsCost(*s.Const)
	}
	names := len(s.Required)
	for _, req := range s.DependentRequired {
		names += len(req)
	}
	for _, dep := range s.Dependencies {
		if req, ok := dep.([]string); ok {
			names += len(req)
		}
	}
	a += costName * float64(names)
	if s.MinLength != nil || s.MaxLength != nil {
		r += costScanByte
	}
	if s.Format != nil {
		a += costFormat
		r += costFormatByte
	}
	if p, ok := s.Pattern.(*pattern); ok {
		a += p.matchCost()
		if n := p.scanned(); n >= 0 {
			a += costRegexpByte * float64(p.insts*n)
		} else {
			r += costRegexpByte * float64(p.insts)
		}
	}
	for _, ext := range s.Extensions {
		if _, ok := ext.(uniqueItems); ok {
			r += costUniqueByte
		}
	}
	return a, r, w, short
}

// canFail reports whether evaluating s can fail, making an error.
func canFail(s *jsonschema.Schema) bool {
	return s.Types != nil || s.Const != nil || s.Enum != nil || s.Format != nil || s.Not != nil ||
		len(s.AllOf) > 0 || len(s.AnyOf) > 0 || len(s.OneOf) > 0 || s.If != nil || s.Ref != nil ||
		s.MaxProperties != nil || s.MinProperties != nil || len(s.Required) > 0 || s.PropertyNames != nil ||
		len(s.Properties) > 0 || len(s.PatternProperties) > 0 || s.AdditionalProperties != nil ||
		len(s.Dependencies) > 0 || len(s.DependentRequired) > 0 || len(s.DependentSchemas) > 0 ||
		s.UnevaluatedProperties != nil || s.MinItems != nil || s.MaxItems != nil || s.Contains != nil ||
		s.Items != nil || s.AdditionalItems != nil || len(s.PrefixItems) > 0 || s.Items2020 != nil ||
		s.UnevaluatedItems != nil || s.MinLength != nil || s.MaxLength != nil || s.Pattern != nil ||
		s.Minimum != nil || s.Maximum != nil || s.ExclusiveMinimum != nil || s.ExclusiveMaximum != nil ||
		s.MultipleOf != nil || len(s.Extensions) > 0
}

// equalsCost is comparing a payload value with v (enum, const): a
// number compares as two big.Rats, an object or array item by item.
func equalsCost(v any) float64 {
	switch v := v.(type) {
	case map[string]any:
		c := costEqualsCheap
		for _, x := range v {
			c += equalsCost(x)
		}
		return c
	case []any:
		c := costEqualsCheap
		for _, x := range v {
			c += equalsCost(x)
		}
		return c
	case string, bool, nil:
		return costEqualsCheap
	}
	return costEquals
}

// children adds to b what s's children cost per byte and in walks, from
// their bounds one level down (an.prev), and returns the curve of its
// members: a named property's or a prefixItems position's costs are an
// item (it is there once at most), the short keys' another, and each
// member's own menu comes along with it; the rest is per byte.
func (an *analysis) children(b *bound, s *jsonschema.Schema) curve {
	at := func(t *jsonschema.Schema) bound { return an.prev[an.index[t]] }
	rate, walk := 0.0, 0.0 // per byte of the node, most over the kinds of child

	// Objects. What every member meets: the patterns (any may match)
	// and unevaluatedProperties.
	var every bound
	for _, t := range s.PatternProperties {
		every.add(at(t))
	}
	if t := s.UnevaluatedProperties; t != nil {
		every.add(at(t))
	}
	other := every // a key no property names
	if t, ok := s.AdditionalProperties.(*jsonschema.Schema); ok {
		other.add(at(t))
	}
	// A member whose key is two bytes or more takes six of the node's
	// own, and a byte at least of its value; the shortKeys others are
	// an item, with their menus.
	rate = max(rate, perByte(other, 6))
	walk = max(walk, other.w())
	type member struct {
		cost  float64
		bytes int
		menu  curve
	}
	var named []member
	if other.a > 0 || len(other.menu) > 0 {
		named = append(named, member{shortKeys * other.a, shortKeys * 5, other.menu.times(shortKeys)})
	}
	for _, name := range sortedKeys(s.Properties) {
		c := every
		c.add(at(s.Properties[name]))
		named = append(named, member{c.a, len(name) + 5, c.menu})
		rate = max(rate, c.r)
		walk = max(walk, c.w())
	}

	// Arrays. What every element meets: contains, unevaluatedItems, and
	// items (additionalItems) taken to apply to all.
	var elem bound
	if t := s.Contains; t != nil {
		elem.add(at(t))
	}
	if t := s.UnevaluatedItems; t != nil {
		elem.add(at(t))
	}
	var positional []*jsonschema.Schema
	switch items := s.Items.(type) {
	case *jsonschema.Schema:
		elem.add(at(items))
	case []*jsonschema.Schema:
		positional = items
	}
	if t, ok := s.AdditionalItems.(*jsonschema.Schema); ok {
		elem.add(at(t))
	}
	if s.Items2020 != nil {
		elem.add(at(s.Items2020))
	}
	positional = append(positional, s.PrefixItems...)
	for _, ext := range s.Extensions {
		bi, ok := ext.(boundedItems)
		if !ok {
			continue
		}
		// Checked on at most bi.max elements (see boundedItems): all
		// of them cost at most bi.max × the fixed part, the menu bi.max
		// times over as the bytes allow, and the per-byte part. Or per
		// byte, as if unbounded: the lesser.
		c := at(bi.sch)
		fixed := float64(bi.max)*c.a + c.menu.times(float64(bi.max)).at(MaxBytes)
		unbounded := elem
		unbounded.add(c)
		if fixed+c.r*MaxBytes < perByte(unbounded, 1)*MaxBytes {
			b.a = min(b.a+fixed, costCap)
			rate = max(rate, c.r)
			walk = max(walk, c.w())
		} else {
			elem = unbounded
		}
	}
	rate = max(rate, perByte(elem, 1)) // a comma
	walk = max(walk, elem.w())
	for _, t := range positional {
		c := at(t)
		named = append(named, member{c.a, 2, c.menu})
		rate = max(rate, c.r)
		walk = max(walk, c.w())
	}
	// Each member's bytes are charged rate each already (b.r grows by
	// it): its item is what its costs exceed that by.
	var members curve
	for _, m := range named {
		members = union(members, union(item(m.cost-rate*float64(m.bytes), m.bytes), m.menu))
	}
	b.r = min(b.r+rate, costCap)
	b.wc = min(b.wc+walk, costCap)
	return members
}

// sameNode lists the schemas s applies at its own node.
func sameNode(s *jsonschema.Schema) []*jsonschema.Schema {
	var out []*jsonschema.Schema
	add := func(t *jsonschema.Schema) {
		if t != nil {
			out = append(out, t)
		}
	}
	add(s.Ref)
	add(s.Not)
	add(s.If)
	add(s.Then)
	add(s.Else)
	out = append(out, s.AllOf...)
	out = append(out, s.AnyOf...)
	out = append(out, s.OneOf...)
	for _, k := range sortedKeys(s.DependentSchemas) {
		add(s.DependentSchemas[k])
	}
	for _, k := range sortedKeys(s.Dependencies) {
		if t, ok := s.Dependencies[k].(*jsonschema.Schema); ok {
			add(t)
		}
	}
	return out
}

// children lists the schemas s applies to its node's children (and
// keys).
func children(s *jsonschema.Schema) []*jsonschema.Schema {
	var out []*jsonschema.Schema
	add := func(t any) {
		if t, ok := t.(*jsonschema.Schema); ok && t != nil {
			out = append(out, t)
		}
	}
	for _, k := range sortedKeys(s.Properties) {
		add(s.Properties[k])
	}
	for _, t := range s.PatternProperties {
		add(t)
	}
	add(s.AdditionalProperties)
	add(s.UnevaluatedProperties)
	add(s.PropertyNames)
	switch items := s.Items.(type) {
	case *jsonschema.Schema:
		add(items)
	case []*jsonschema.Schema:
		for _, t := range items {
			add(t)
		}
	}
	add(s.AdditionalItems)
	for _, t := range s.PrefixItems {
		add(t)
	}
	add(s.Items2020)
	add(s.Contains)
	add(s.UnevaluatedItems)
	for _, ext := range s.Extensions {
		if bi, ok := ext.(boundedItems); ok {
			add(bi.sch)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// where names a schema for an error: its JSON pointer in the
// payload_schema, or its URL when it is elsewhere (a meta-schema).
func where(s *jsonschema.Schema) string {
	if rest, ok := strings.CutPrefix(s.Location, schemaURL); ok {
		if rest == "" || rest == "#" {
			return "#"
		}
		return rest
	}
	return s.Location
}

// hottest follows the costliest path down from the root: the schema
// where most of the bound comes from, for the refusal's message. A
// same-node schema weighs its own bound; a child's, what it costs
// applied to every value it may meet.
func (an *analysis) hottest() string {
	weight := func(j int, child bool) float64 {
		if child {
			return perByte(an.cur[j], 1) * MaxBytes
		}
		return an.cur[j].total()
	}
	seen := map[int]bool{}
	i := 0
	for !seen[i] {
		seen[i] = true
		next, most := -1, an.cur[i].total()/2
		for _, t := range sameNode(an.nodes[i]) {
			if j := an.index[t]; weight(j, false) > most {
				next, most = j, weight(j, false)
			}
		}
		for _, t := range children(an.nodes[i]) {
			if j := an.index[t]; weight(j, true) > most {
				next, most = j, weight(j, true)
			}
		}
		if next < 0 {
			break
		}
		i = next
	}
	return where(an.nodes[i])
}

// costly is the error for a schema over the budget.
func costly(bound float64, an *analysis) error {
	b := "more than 10^30"
	if bound < costCap {
		b = fmt.Sprintf("%.0f", math.Ceil(bound))
	}
	return fmt.Errorf("%w: checking one order could cost up to %s units, over the budget of %d (under 1 ms of CPU); "+
		"most of it at %s. What brings it down: maxItems on an array whose items are checked (then at most that many are), "+
		"maxLength beside a pattern, fewer anyOf, oneOf, allOf or if/then/else branches applied to one value, fewer numbers in an enum",
		ErrTooCostly, b, CostBudget, an.hottest())
}
