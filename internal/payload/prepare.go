package payload

import (
	"encoding/json"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strconv"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

// pattern is a compiled pattern that knows its size: matching costs at
// most its instructions times the bytes it reads.
type pattern struct {
	re    *regexp.Regexp
	insts int
	// anchored: the pattern matches at the start only (^…), which Go's
	// regexp sets up for at a fraction of the cost.
	anchored bool
	// anchoredRunes, when not negative, is the most runes a match can
	// take in a pattern anchored at the start (^[A-Z]{1,8}$: 8): Go's
	// regexp gives up on such a pattern once that much is read.
	anchoredRunes int
	// maxBytes, when set, is 4 × the schema's maxLength: a longer string
	// has more runes than maxLength allows, so the schema fails whatever
	// the pattern says, and it is not matched (the library would scan it
	// all).
	maxBytes int
}

// matchCost is what a match costs whatever the string.
func (p *pattern) matchCost() float64 {
	if p.anchored {
		return costRegexpAnchored
	}
	return costRegexpMatch
}

// scanned is the most bytes matching reads whatever the string, or -1
// when that is the whole string.
func (p *pattern) scanned() int {
	n := -1
	if p.anchoredRunes >= 0 {
		n = 4*p.anchoredRunes + 4
	}
	if p.maxBytes > 0 && (n < 0 || p.maxBytes < n) {
		n = p.maxBytes
	}
	if n > MaxBytes {
		return -1
	}
	return n
}

func (p *pattern) MatchString(s string) bool {
	if p.maxBytes > 0 && len(s) > p.maxBytes {
		return false
	}
	return p.re.MatchString(s)
}

func (p *pattern) String() string { return p.re.String() }

// compilePattern is the compiler's regexp engine: Go's regexp, sized.
func compilePattern(expr string) (jsonschema.Regexp, error) {
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, err
	}
	sre, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, err
	}
	sre = sre.Simplify()
	prog, err := syntax.Compile(sre)
	if err != nil {
		return nil, err
	}
	p := &pattern{re: re, insts: len(prog.Inst), anchoredRunes: -1}
	if prog.StartCond()&syntax.EmptyBeginText != 0 {
		p.anchored = true
		if n, ok := maxRunes(sre); ok {
			p.anchoredRunes = n
		}
	}
	return p, nil
}

// maxRunes is the most runes a match of re can take, ok false when
// there is no bound (a star, a plus, {n,}).
func maxRunes(re *syntax.Regexp) (int, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		return len(re.Rune), true
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return 1, true
	case syntax.OpEmptyMatch, syntax.OpNoMatch, syntax.OpBeginLine, syntax.OpEndLine,
		syntax.OpBeginText, syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return 0, true
	case syntax.OpCapture, syntax.OpQuest:
		return maxRunes(re.Sub[0])
	case syntax.OpStar, syntax.OpPlus:
		n, ok := maxRunes(re.Sub[0])
		return 0, ok && n == 0
	case syntax.OpRepeat:
		n, ok := maxRunes(re.Sub[0])
		if !ok || (re.Max < 0 && n > 0) {
			return 0, false
		}
		return max(re.Max, 0) * n, true
	case syntax.OpConcat:
		total := 0
		for _, sub := range re.Sub {
			n, ok := maxRunes(sub)
			if !ok {
				return 0, false
			}
			total += n
		}
		return total, true
	case syntax.OpAlternate:
		most := 0
		for _, sub := range re.Sub {
			n, ok := maxRunes(sub)
			if !ok {
				return 0, false
			}
			most = max(most, n)
		}
		return most, true
	}
	return 0, false
}

// uniqueItems replaces the library's uniqueItems check, which compares
// up to 20 items pairwise, each number as two big.Rats: 20 equal objects
// of 50 numbers cost ~10 ms. Here each item becomes one canonical key
// (its canonical form with sorted keys; canonical numbers are equal
// exactly when their values are), and a map finds the first repeat:
// linear in the array's bytes.
type uniqueItems struct{}

func (uniqueItems) Validate(ctx *jsonschema.ValidatorContext, v any) {
	arr, ok := v.([]any)
	if !ok || len(arr) < 2 {
		return
	}
	seen := make(map[string]int, len(arr))
	var buf []byte
	for i, item := range arr {
		buf = appendSorted(buf[:0], item)
		if j, dup := seen[string(buf)]; dup {
			ctx.AddError(&kind.UniqueItems{Duplicates: [2]int{j, i}})
			return
		}
		seen[string(buf)] = i
	}
}

// appendSorted writes v as its canonical form with the keys of every
// object sorted: one string per value, for uniqueItems.
func appendSorted(b []byte, v any) []byte {
	switch v := v.(type) {
	case map[string]any:
		b = append(b, '{')
		for i, k := range sortedKeys(v) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendSorted(b, v[k])
		}
		return append(b, '}')
	case []any:
		b = append(b, '[')
		for i, x := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendSorted(b, x)
		}
		return append(b, ']')
	case string:
		return appendString(b, v)
	case bool:
		if v {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case nil:
		return append(b, "null"...)
	case json.Number:
		return append(b, v...) // canonical: equal exactly when the values are
	}
	return fmt.Append(b, v)
}

// boundedItems is items (or additionalItems) of a schema with maxItems,
// checked by the gate in place of the library: an array over maxItems
// fails the schema whatever its items are, and the library would check
// every item of it anyway, so here they are checked only when the array
// is within maxItems. A schema is as valid as before; what checking it
// costs is bounded by maxItems × its items' cost.
type boundedItems struct {
	max  int
	from int // the first index items applies to (after prefixItems)
	sch  *jsonschema.Schema
}

func (bi boundedItems) Validate(ctx *jsonschema.ValidatorContext, v any) {
	arr, ok := v.([]any)
	if !ok || len(arr) > bi.max {
		return
	}
	for i := bi.from; i < len(arr); i++ {
		ctx.AddErr(ctx.Validate(bi.sch, arr[i], []string{strconv.Itoa(i)}))
	}
}

// prepare adjusts a compiled schema for the gate before it is priced:
// uniqueItems checked in linear time, patterns under a maxLength not
// scanned past what the maxLength allows, items under a maxItems not
// checked past it.
func prepare(root *jsonschema.Schema) {
	seen := map[*jsonschema.Schema]bool{root: true}
	stack := []*jsonschema.Schema{root}
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if s.UniqueItems {
			s.UniqueItems = false
			s.Extensions = append(s.Extensions, uniqueItems{})
		}
		if p, ok := s.Pattern.(*pattern); ok && s.MaxLength != nil && *s.MaxLength >= 0 && *s.MaxLength < MaxBytes {
			p.maxBytes = 4 * *s.MaxLength
		}
		if s.MaxItems != nil && *s.MaxItems >= 0 {
			bi := boundedItems{max: *s.MaxItems}
			switch items := s.Items.(type) {
			case *jsonschema.Schema:
				// additionalItems means nothing beside a schema items.
				bi.sch, s.Items, s.AdditionalItems = items, nil, nil
			case []*jsonschema.Schema:
				if t, ok := s.AdditionalItems.(*jsonschema.Schema); ok {
					bi.sch, bi.from, s.AdditionalItems = t, len(items), nil
				}
			}
			if s.Items2020 != nil {
				bi.sch, bi.from, s.Items2020 = s.Items2020, len(s.PrefixItems), nil
			}
			if bi.sch != nil {
				s.Extensions = append(s.Extensions, bi)
				// Its schema is walked below as the extension's.
				if !seen[bi.sch] {
					seen[bi.sch] = true
					stack = append(stack, bi.sch)
				}
			}
		}
		for _, t := range append(sameNode(s), children(s)...) {
			if !seen[t] {
				seen[t] = true
				stack = append(stack, t)
			}
		}
	}
}
