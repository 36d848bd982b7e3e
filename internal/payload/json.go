package payload

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The strict decoder. An order body is parsed once, here; the value tree
// it returns is what a sale's payload_schema checks, and its canonical
// encoding is what the ledger keeps and every backend receives. So a
// JSON text that two readers could read differently is refused rather
// than read one way: encoding/json keeps the last of a key given twice
// (SQLite's json_extract the first), turns invalid UTF-8 and lone
// surrogates into U+FFFD (PostgreSQL refuses them), and PostgreSQL's
// jsonb refuses \u0000 and numbers beyond its numeric range.
//
// Refused, each with where it is: anything RFC 8259 does not allow; a
// key given twice in one object (compared after unescaping); invalid
// UTF-8, raw or as an encoded surrogate; an escaped lone surrogate;
// \u0000; a number whose magnitude a double cannot hold (1e999999,
// -1e400, 1e-400 too: it would read as 0); nesting deeper than the
// bound Decode is given.
//
// The canonical form, byte for byte:
//   - no white space; keys in the order they came (a JSON object has no
//     order; keeping the sender's makes the stored payload read as sent);
//   - strings with the fewest escapes: \" and \\, \b \f \n \r \t, \u00XX
//     for the other control characters; everything else as UTF-8 (\u00e9
//     becomes é, \/ becomes /);
//   - numbers normalised, so that every reader reads the number the
//     schema checked: an integer that fits in 64 bits is written as its
//     digits (1e2 is 100, -0 is 0, 9007199254740993 stays exact: SQLite
//     and PostgreSQL read such integers exactly); any other number is
//     the nearest double, written shortest as JavaScript and Go write it
//     (0.10000000000000001 is 0.1, 19.90 is 19.9, 1e21 is 1e+21): the
//     double is what SQLite's json_extract and a JavaScript client read,
//     and PostgreSQL's numeric reads its shortest decimal exactly. Kept
//     as sent, 1.00000000000000001 would pass "exclusiveMinimum": 1 at
//     the gate and read as 1 in SQLite.
// Decoding the canonical form gives the same tree and the same bytes.

// MaxDepth bounds how deeply a payload nests objects and arrays: the
// payload object itself is the first level. It bounds the work of a
// schema that recurses into the payload too (see Compile).
const MaxDepth = 32

// DecodeError says why a JSON text is refused, and where.
type DecodeError struct {
	// Offset is the byte offset in the input of the fault.
	Offset int
	// Path is a JSON pointer to the value at fault ("" for the whole).
	Path string
	// Msg says what is wrong.
	Msg string
}

func (e *DecodeError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("%s (byte %d)", e.Msg, e.Offset)
	}
	return fmt.Sprintf("%s at %s (byte %d)", e.Msg, e.Path, e.Offset)
}

// Doc is a JSON text decoded strictly.
type Doc struct {
	// Value is the value tree: map[string]any, []any, string,
	// json.Number (in canonical form), bool or nil.
	Value any
	// Canonical is Value's canonical encoding.
	Canonical []byte
	// Members are the root object's members in order (none when the
	// root is not an object).
	Members []Member
}

// Member is one member of a root object.
type Member struct {
	Key   string
	Value any
	// Canonical is the value's canonical encoding, a part of
	// Doc.Canonical.
	Canonical []byte
}

// Decode parses data, one JSON value with optional white space around
// it, strictly (see above), nesting at most maxDepth levels of objects
// and arrays. An error is a *DecodeError.
func Decode(data []byte, maxDepth int) (Doc, error) {
	d := decoder{in: data, maxDepth: maxDepth, out: make([]byte, 0, len(data))}
	d.space()
	v, err := d.value(0)
	if err != nil {
		return Doc{}, err
	}
	d.space()
	if d.pos != len(d.in) {
		return Doc{}, d.fail("data after the JSON value")
	}
	doc := Doc{Value: v, Canonical: d.out}
	if len(d.spans) > 0 {
		doc.Members = make([]Member, len(d.spans))
		for i, s := range d.spans {
			doc.Members[i] = Member{Key: s.key, Value: s.value, Canonical: d.out[s.start:s.end:s.end]}
		}
	}
	return doc, nil
}

type decoder struct {
	in       []byte
	pos      int
	out      []byte
	maxDepth int
	// path is where the decoder is, for errors: a key, or an index when
	// key is unset (arrays).
	path  []step
	spans []span
}

type step struct {
	key   string
	index int
	isKey bool
}

type span struct {
	key        string
	value      any
	start, end int
}

func (d *decoder) pointer() string {
	var b strings.Builder
	for _, s := range d.path {
		b.WriteByte('/')
		if s.isKey {
			b.WriteString(strings.ReplaceAll(strings.ReplaceAll(s.key, "~", "~0"), "/", "~1"))
		} else {
			b.WriteString(strconv.Itoa(s.index))
		}
	}
	return b.String()
}

func (d *decoder) fail(msg string) error { return d.failAt(d.pos, msg) }

func (d *decoder) failAt(off int, msg string) error {
	return &DecodeError{Offset: off, Path: d.pointer(), Msg: msg}
}

func (d *decoder) unexpected() error {
	if d.pos >= len(d.in) {
		return d.fail("unexpected end of the JSON text")
	}
	c := d.in[d.pos]
	if c < utf8.RuneSelf {
		return d.fail(fmt.Sprintf("unexpected %q", c))
	}
	return d.fail(fmt.Sprintf("unexpected byte 0x%02x", c))
}

func (d *decoder) space() {
	for d.pos < len(d.in) {
		switch d.in[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) value(depth int) (any, error) {
	if d.pos >= len(d.in) {
		return nil, d.unexpected()
	}
	switch c := d.in[d.pos]; {
	case c == '{':
		return d.object(depth + 1)
	case c == '[':
		return d.array(depth + 1)
	case c == '"':
		s, err := d.str()
		if err != nil {
			return nil, err
		}
		d.out = appendString(d.out, s)
		return s, nil
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	}
	return nil, d.unexpected()
}

func (d *decoder) literal(word string) error {
	if len(d.in)-d.pos < len(word) || string(d.in[d.pos:d.pos+len(word)]) != word {
		return d.unexpected()
	}
	d.pos += len(word)
	d.out = append(d.out, word...)
	return nil
}

func (d *decoder) object(depth int) (any, error) {
	if depth > d.maxDepth {
		return nil, d.fail(fmt.Sprintf("nested deeper than %d levels", d.maxDepth))
	}
	d.pos++ // {
	d.out = append(d.out, '{')
	m := map[string]any{}
	d.space()
	if d.pos < len(d.in) && d.in[d.pos] == '}' {
		d.pos++
		d.out = append(d.out, '}')
		return m, nil
	}
	for {
		if d.pos >= len(d.in) || d.in[d.pos] != '"' {
			return nil, d.unexpected()
		}
		at := d.pos
		key, err := d.str()
		if err != nil {
			return nil, err
		}
		if _, dup := m[key]; dup {
			d.path = append(d.path, step{key: key, isKey: true})
			return nil, d.failAt(at, fmt.Sprintf("the key %q given twice", key))
		}
		d.space()
		if d.pos >= len(d.in) || d.in[d.pos] != ':' {
			return nil, d.unexpected()
		}
		d.pos++
		d.space()
		if len(m) > 0 {
			d.out = append(d.out, ',')
		}
		d.out = appendString(d.out, key)
		d.out = append(d.out, ':')
		d.path = append(d.path, step{key: key, isKey: true})
		start := len(d.out)
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		d.path = d.path[:len(d.path)-1]
		m[key] = v
		if depth == 1 {
			d.spans = append(d.spans, span{key: key, value: v, start: start, end: len(d.out)})
		}
		d.space()
		if d.pos >= len(d.in) {
			return nil, d.unexpected()
		}
		switch d.in[d.pos] {
		case ',':
			d.pos++
			d.space()
		case '}':
			d.pos++
			d.out = append(d.out, '}')
			return m, nil
		default:
			return nil, d.unexpected()
		}
	}
}

func (d *decoder) array(depth int) (any, error) {
	if depth > d.maxDepth {
		return nil, d.fail(fmt.Sprintf("nested deeper than %d levels", d.maxDepth))
	}
	d.pos++ // [
	d.out = append(d.out, '[')
	a := []any{}
	d.space()
	if d.pos < len(d.in) && d.in[d.pos] == ']' {
		d.pos++
		d.out = append(d.out, ']')
		return a, nil
	}
	for {
		if len(a) > 0 {
			d.out = append(d.out, ',')
		}
		d.path = append(d.path, step{index: len(a)})
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		d.path = d.path[:len(d.path)-1]
		a = append(a, v)
		d.space()
		if d.pos >= len(d.in) {
			return nil, d.unexpected()
		}
		switch d.in[d.pos] {
		case ',':
			d.pos++
			d.space()
		case ']':
			d.pos++
			d.out = append(d.out, ']')
			return a, nil
		default:
			return nil, d.unexpected()
		}
	}
}

// str reads the string at d.pos and returns it unescaped.
func (d *decoder) str() (string, error) {
	d.pos++ // "
	start := d.pos
	for d.pos < len(d.in) {
		c := d.in[d.pos]
		switch {
		case c == '"':
			s := string(d.in[start:d.pos])
			d.pos++
			return s, nil
		case c == '\\':
			return d.escaped(start)
		case c < 0x20:
			return "", d.fail(fmt.Sprintf("a control character (U+%04X) in a string: it must be escaped", c))
		case c < utf8.RuneSelf:
			d.pos++
		default:
			r, n := utf8.DecodeRune(d.in[d.pos:])
			if r == utf8.RuneError && n == 1 {
				return "", d.fail("invalid UTF-8 in a string")
			}
			d.pos += n
		}
	}
	return "", d.unexpected()
}

// escaped is str past the first backslash.
func (d *decoder) escaped(start int) (string, error) {
	buf := make([]byte, 0, 2*(d.pos-start)+16)
	buf = append(buf, d.in[start:d.pos]...)
	for d.pos < len(d.in) {
		c := d.in[d.pos]
		switch {
		case c == '"':
			d.pos++
			return string(buf), nil
		case c == '\\':
			r, err := d.escape()
			if err != nil {
				return "", err
			}
			buf = utf8.AppendRune(buf, r)
		case c < 0x20:
			return "", d.fail(fmt.Sprintf("a control character (U+%04X) in a string: it must be escaped", c))
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			d.pos++
		default:
			r, n := utf8.DecodeRune(d.in[d.pos:])
			if r == utf8.RuneError && n == 1 {
				return "", d.fail("invalid UTF-8 in a string")
			}
			buf = append(buf, d.in[d.pos:d.pos+n]...)
			d.pos += n
		}
	}
	return "", d.unexpected()
}

// escape reads one escape sequence at d.pos (a backslash), a surrogate
// pair as one.
func (d *decoder) escape() (rune, error) {
	at := d.pos
	if d.pos+1 >= len(d.in) {
		d.pos = len(d.in)
		return 0, d.unexpected()
	}
	c := d.in[d.pos+1]
	d.pos += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
	default:
		return 0, d.failAt(at, fmt.Sprintf("the escape \\%c is not JSON", c))
	}
	r, ok := d.hex4()
	switch {
	case !ok:
		return 0, d.failAt(at, "\\u must be followed by 4 hexadecimal digits")
	case r == 0:
		return 0, d.failAt(at, `\u0000 in a string: PostgreSQL's jsonb cannot store it`)
	case r >= 0xDC00 && r <= 0xDFFF:
		return 0, d.failAt(at, fmt.Sprintf(`a lone surrogate \u%04x: not a character`, r))
	case r < 0xD800 || r > 0xDBFF:
		return r, nil
	}
	// A high surrogate: a low one must follow.
	if d.pos+1 < len(d.in) && d.in[d.pos] == '\\' && d.in[d.pos+1] == 'u' {
		d.pos += 2
		if lo, ok := d.hex4(); ok && lo >= 0xDC00 && lo <= 0xDFFF {
			return 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00), nil
		}
	}
	return 0, d.failAt(at, fmt.Sprintf(`a lone surrogate \u%04x: not a character`, r))
}

func (d *decoder) hex4() (rune, bool) {
	if len(d.in)-d.pos < 4 {
		return 0, false
	}
	var r rune
	for _, c := range d.in[d.pos : d.pos+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	d.pos += 4
	return r, true
}

// number reads the number at d.pos (RFC 8259's grammar) and writes it
// in canonical form.
func (d *decoder) number() (any, error) {
	start := d.pos
	p := d.pos
	in := d.in
	digits := func() int {
		n := 0
		for p < len(in) && in[p] >= '0' && in[p] <= '9' {
			p++
			n++
		}
		return n
	}
	if in[p] == '-' {
		p++
	}
	switch {
	case p < len(in) && in[p] == '0':
		p++
	case digits() == 0:
		d.pos = p
		return nil, d.unexpected()
	}
	if p < len(in) && in[p] == '.' {
		p++
		if digits() == 0 {
			d.pos = p
			return nil, d.unexpected()
		}
	}
	if p < len(in) && (in[p] == 'e' || in[p] == 'E') {
		p++
		if p < len(in) && (in[p] == '+' || in[p] == '-') {
			p++
		}
		if digits() == 0 {
			d.pos = p
			return nil, d.unexpected()
		}
	}
	d.pos = p
	n, err := canonicalNumber(in[start:p])
	if err != nil {
		return nil, d.failAt(start, err.Error())
	}
	d.out = append(d.out, n...)
	return json.Number(n), nil
}

// canonicalNumber writes a number literal (of JSON's grammar) in
// canonical form: the digits of an integer that fits in an int64, else
// the nearest double, shortest. A magnitude a double cannot hold, or
// one that it would read as 0, is an error.
func canonicalNumber(lit []byte) (string, error) {
	neg := lit[0] == '-'
	body := lit
	if neg {
		body = lit[1:]
	}
	// The common case: a plain integer of up to 18 digits is its own
	// canonical form.
	if len(body) <= 18 && allDigits(body) {
		if len(body) == 1 && body[0] == '0' {
			return "0", nil // -0 too
		}
		return string(lit), nil
	}
	// value = sig × 10^exp, sig without leading or trailing zeros.
	var sig []byte
	exp := 0
	i := 0
	for ; i < len(body) && body[i] != '.' && body[i] != 'e' && body[i] != 'E'; i++ {
		if len(sig) > 0 || body[i] != '0' {
			sig = append(sig, body[i])
		}
	}
	if i < len(body) && body[i] == '.' {
		for i++; i < len(body) && body[i] != 'e' && body[i] != 'E'; i++ {
			if len(sig) > 0 || body[i] != '0' {
				sig = append(sig, body[i])
			}
			exp--
		}
	}
	if i < len(body) { // the exponent, saturated far beyond a double's
		i++
		eneg := body[i] == '-'
		if body[i] == '+' || body[i] == '-' {
			i++
		}
		e := 0
		for ; i < len(body); i++ {
			if e < 1e9 {
				e = e*10 + int(body[i]-'0')
			}
		}
		if eneg {
			e = -e
		}
		exp += e
	}
	for len(sig) > 0 && sig[len(sig)-1] == '0' {
		sig = sig[:len(sig)-1]
		exp++
	}
	if len(sig) == 0 {
		return "0", nil
	}
	if exp >= 0 && len(sig)+exp <= 19 {
		digits := make([]byte, 0, 20)
		if neg {
			digits = append(digits, '-')
		}
		digits = append(digits, sig...)
		for range exp {
			digits = append(digits, '0')
		}
		if _, err := strconv.ParseInt(string(digits), 10, 64); err == nil {
			return string(digits), nil
		}
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	switch {
	case err != nil || math.IsInf(f, 0):
		return "", fmt.Errorf("the number %.40s is beyond the range of a double (IEEE 754 binary64)", lit)
	case f == 0:
		return "", fmt.Errorf("the number %.40s is too small for a double (IEEE 754 binary64): it would read as 0", lit)
	}
	return string(appendFloat(nil, f)), nil
}

func allDigits(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// appendFloat writes f as encoding/json does, which is how JavaScript
// writes a number: shortest, in exponent form below 1e-6 and from 1e21.
func appendFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendString writes s, valid UTF-8, as a JSON string with the fewest
// escapes.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
