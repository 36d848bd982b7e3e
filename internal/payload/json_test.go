package payload_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"sluice/internal/payload"
)

func TestDecodeCanonical(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{}`, `{}`},
		{` { "b" : 1 , "a" : [ 1 , 2 , { } , [ ] ] } `, `{"b":1,"a":[1,2,{},[]]}`}, // keys keep their order
		{`{"s":"\u00e9\/\"\\\b\f\n\r\t\u001f\u007f"}`, "{\"s\":\"é/\\\"\\\\\\b\\f\\n\\r\\t\\u001f\x7f\"}"},
		{`{"s":"\ud83d\ude00 \uD83D\uDE00"}`, `{"s":"😀 😀"}`},
		{`{"\u0061":1}`, `{"a":1}`},
		{`{"s":"<&> ` + "\u2028" + `"}`, `{"s":"<&> ` + "\u2028" + `"}`},
		{`[true,false,null]`, `[true,false,null]`},
		// Numbers: an int64 as its digits, anything else the nearest
		// double, shortest.
		{`[0,-0,-0.0,0e5,1,-1,100,1e2,1.5e1,1.0,19.90,0.1,1E+2,1e-2]`, `[0,0,0,0,1,-1,100,100,15,1,19.9,0.1,100,0.01]`},
		{`[9007199254740993,9223372036854775807,-9223372036854775808,1e18,123456789012345678]`,
			`[9007199254740993,9223372036854775807,-9223372036854775808,1000000000000000000,123456789012345678]`},
		{`[9223372036854775808,1e20,1e21,12345678901234567890123]`, `[9223372036854776000,100000000000000000000,1e+21,1.2345678901234568e+22]`},
		{`[0.10000000000000001,1.00000000000000001,5e-324,3e-324,1e-7,0.000001,1.7976931348623157e308]`,
			`[0.1,1,5e-324,5e-324,1e-7,0.000001,1.7976931348623157e+308]`},
		{`[1` + strings.Repeat("0", 300) + `e-300, 0.` + strings.Repeat("0", 400) + `1e401]`, `[1,1]`},
	} {
		doc, err := payload.Decode([]byte(c.in), payload.MaxDepth)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if string(doc.Canonical) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.in, doc.Canonical, c.want)
		}
		// The canonical form is a fixed point, and encoding/json reads
		// it as the same value.
		again, err := payload.Decode(doc.Canonical, payload.MaxDepth)
		if err != nil || string(again.Canonical) != c.want || !reflect.DeepEqual(again.Value, doc.Value) {
			t.Errorf("%s: decoding the canonical form again: %s %v", c.in, again.Canonical, err)
		}
		var viaStd any
		if err := json.Unmarshal(doc.Canonical, &viaStd); err != nil {
			t.Errorf("%s: encoding/json refuses the canonical form: %v", c.in, err)
		}
	}
}

// The hostile inputs of issue 27, and the rest of what the decoder
// refuses, each with where it is.
func TestDecodeRefuses(t *testing.T) {
	deep := strings.Repeat("[", payload.MaxDepth+1) + strings.Repeat("]", payload.MaxDepth+1)
	for _, c := range []struct{ name, in, path, msg string }{
		{"a duplicate key", `{"sku":"TEE-1","quantity":100,"quantity":1}`, "/quantity", "given twice"},
		{"a duplicate key deep down", `{"a":[{"x":1},{"x":1,"y":{"z":1,"z":2}}]}`, "/a/1/y/z", "given twice"},
		{"a duplicate key spelt with an escape", `{"qty":1,"q\u0074y":2}`, "/qty", "given twice"},
		{"escaped NUL", `{"note":"a\u0000b"}`, "/note", `\u0000`},
		{"raw invalid UTF-8", "{\"note\":\"\xff\"}", "/note", "invalid UTF-8"},
		{"raw invalid UTF-8 in a key", "{\"\xc3\":1}", "", "invalid UTF-8"},
		{"a raw surrogate", "{\"note\":\"\xed\xa0\x80\"}", "/note", "invalid UTF-8"},
		{"an overlong encoding", "{\"note\":\"\xc0\xaf\"}", "/note", "invalid UTF-8"},
		{"a lone high surrogate", `{"note":"\ud800"}`, "/note", "lone surrogate"},
		{"a high surrogate then a letter", `{"note":"\ud800x"}`, "/note", "lone surrogate"},
		{"two high surrogates", `{"note":"\ud800\ud800"}`, "/note", "lone surrogate"},
		{"a lone low surrogate", `{"note":"\udc00"}`, "/note", "lone surrogate"},
		{"a huge number", `{"n":1e999999}`, "/n", "beyond the range"},
		{"a huge negative number", `{"n":-1e400}`, "/n", "beyond the range"},
		{"a number that reads as 0", `{"n":1e-400}`, "/n", "too small"},
		{"nested too deep", deep, strings.Repeat("/0", payload.MaxDepth), "deeper than 32"},
		{"a raw control character", "{\"note\":\"a\nb\"}", "/note", "control character"},
		{"a bad escape", `{"note":"\x41"}`, "/note", `\x`},
		{"a short \\u", `{"note":"\u12"}`, "/note", `4 hexadecimal`},
		{"a leading zero", `{"n":01}`, "", "unexpected"},
		{"a bare minus", `{"n":-}`, "/n", "unexpected"},
		{"a dot without digits", `{"n":1.}`, "/n", "unexpected"},
		{"an exponent without digits", `{"n":1e+}`, "/n", "unexpected"},
		{"NaN", `{"n":NaN}`, "/n", "unexpected"},
		{"a trailing comma", `{"a":1,}`, "", "unexpected"},
		{"a trailing comma in an array", `[1,]`, "/1", "unexpected"},
		{"a single quote", `{'a':1}`, "", "unexpected"},
		{"data after the value", `{}{}`, "", "after the JSON value"},
		{"a byte order mark", "\xef\xbb\xbf{}", "", "unexpected"},
		{"empty", ``, "", "unexpected end"},
		{"cut short", `{"a":[1,2`, "/a", "unexpected end"},
		{"a cut string", `{"a":"x`, "/a", "unexpected end"},
		{"tru", `[tru]`, "/0", "unexpected"},
	} {
		_, err := payload.Decode([]byte(c.in), payload.MaxDepth)
		var de *payload.DecodeError
		if !errors.As(err, &de) {
			t.Errorf("%s: %q decoded (%v), want refused", c.name, c.in, err)
			continue
		}
		if de.Path != c.path || !strings.Contains(de.Msg, c.msg) || de.Offset < 0 || de.Offset > len(c.in) {
			t.Errorf("%s: %v; want %q at %q", c.name, err, c.msg, c.path)
		}
	}
	// MaxDepth levels are fine.
	ok := strings.Repeat("[", payload.MaxDepth) + strings.Repeat("]", payload.MaxDepth)
	if _, err := payload.Decode([]byte(ok), payload.MaxDepth); err != nil {
		t.Errorf("%d levels: %v", payload.MaxDepth, err)
	}
}

// Members are the root object's, in order, each with its value's
// canonical bytes.
func TestDecodeMembers(t *testing.T) {
	doc, err := payload.Decode([]byte(` {"buyer_id" : "a", "payload": { "b" : [1, 2.50] }, "x": null}`), 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ key, canonical string }{{"buyer_id", `"a"`}, {"payload", `{"b":[1,2.5]}`}, {"x", `null`}}
	if len(doc.Members) != len(want) {
		t.Fatalf("members %+v", doc.Members)
	}
	for i, w := range want {
		if m := doc.Members[i]; m.Key != w.key || string(m.Canonical) != w.canonical {
			t.Errorf("member %d: %s %s, want %s %s", i, m.Key, m.Canonical, w.key, w.canonical)
		}
	}
	if p, ok := doc.Members[1].Value.(map[string]any); !ok || !reflect.DeepEqual(p["b"], []any{json.Number("1"), json.Number("2.5")}) {
		t.Errorf("payload value %#v", doc.Members[1].Value)
	}
}

func BenchmarkDecode(b *testing.B) {
	body := []byte(`{"buyer_id":"alice","payload":{"sku":"TEE-DROP-1","size":"L","quantity":1,"price_shown":"29.00 EUR","options":{"gift":false,"note":"caf\u00e9"}}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := payload.Decode(body, payload.MaxDepth+1); err != nil {
			b.Fatal(err)
		}
	}
}
