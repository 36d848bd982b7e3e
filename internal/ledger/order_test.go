package ledger

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestOrderIDRoundTrip(t *testing.T) {
	for _, id := range []OrderID{
		{Sale: "demo", Seq: 1, Token: NewToken()},
		{Sale: "spring-drop_2", Seq: 18446744073709551615, Token: NewToken()},
	} {
		got, err := ParseOrderID(id.String())
		if err != nil || got != id {
			t.Fatalf("ParseOrderID(%q) = %v, %v", id, got, err)
		}
	}
}

func TestParseOrderIDRejects(t *testing.T) {
	tok := NewToken()
	for _, s := range []string{"", "demo", "demo-1", "demo-0-" + tok, "-1-" + tok, "demo-x-" + tok,
		"demo-1-short", "Demo-1-" + tok, "demo-1-" + strings.ToUpper(tok)} {
		if _, err := ParseOrderID(s); !errors.Is(err, ErrNotFound) {
			t.Errorf("ParseOrderID(%q) err = %v, want ErrNotFound", s, err)
		}
	}
}

func FuzzParseOrderID(f *testing.F) {
	f.Add("demo-42-" + NewToken())
	f.Add("a-b-c")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseOrderID(s)
		if err != nil {
			return
		}
		if id.String() != s {
			t.Fatalf("%q parsed to %+v which renders %q", s, id, id.String())
		}
	})
}

func TestBuyerSubjectIsOneToken(t *testing.T) {
	s := BuyerSubject("demo", "a.b:c@d")
	if strings.Count(s, ".") != 3 || !strings.HasPrefix(s, SubjectPrefix("demo")) {
		t.Fatalf("subject %q", s)
	}
	if BuyerSubject("demo", "a.b") == BuyerSubject("demo", "a_b") {
		t.Fatal("distinct buyers share a subject")
	}
}

func TestSaleValidate(t *testing.T) {
	good := Sale{Name: "s1", Stock: 1}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]Sale{
		"bad name":       {Name: "S1", Stock: 1},
		"negative stock": {Name: "s1", Stock: -1},
		"window":         {Name: "s1", Stock: 1, StartsAt: good.EndsAt.AddDate(1, 0, 0), EndsAt: good.EndsAt.AddDate(0, 0, 1)},
		"negative rate":  {Name: "s1", Stock: 1, Rate: -1},
	} {
		if err := s.Validate(); !errors.Is(err, ErrInvalidSale) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The plain decoder gives exactly what encoding/json gives, or steps
// aside for it.
func FuzzDecodeOrder(f *testing.F) {
	at := time.Date(2026, 11, 21, 9, 30, 0, 123456789, time.UTC)
	for _, o := range []Order{
		{Sale: "s1", BuyerID: "b1", Token: "5tq3xzd0y7k2a", AdmittedAt: at},
		{Sale: "s1", BuyerID: "bü", IdempotencyKey: "k-1", Token: "t", AdmittedAt: at.In(time.FixedZone("", 3600))},
		{Sale: "s", BuyerID: `quote"and\back`, Token: "t", AdmittedAt: at},
	} {
		b, err := o.encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{}`, `{"sale":"s1"}`, `{"sale":"s1","Sale":"s2"}`, `{"sale":"s1","extra":"x"}`,
		`{ "sale":"s1"}`, `{"sale":null}`, `{"sale":"s1",}`, `{"admitted_at":"2026-13-01T00:00:00Z"}`,
		`{"admitted_at":"2026-11-21T09:30:00.5+01:00"}`, "{\"sale\":\"\xff\"}", `{"sale":"a","sale":"b"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := decodePlain(data)
		if !ok {
			return
		}
		var want Order
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("plain decoder took %q, encoding/json refuses it: %v", data, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: plain %+v, encoding/json %+v", data, got, want)
		}
	})
}

func TestDecodeOrderTakesTheLedgerPayload(t *testing.T) {
	o := Order{Sale: "s1", BuyerID: "b1", IdempotencyKey: "k", Token: "5tq3xzd0y7k2a", AdmittedAt: time.Now().UTC()}
	b, _ := o.encode()
	if _, ok := decodePlain(b); !ok {
		t.Fatalf("plain decoder refused %s", b)
	}
	got, err := DecodeOrder(b)
	if err != nil || !reflect.DeepEqual(got, o) {
		t.Fatalf("DecodeOrder(%s) = %+v, %v", b, got, err)
	}
	if _, err := DecodeOrder([]byte(`{"sale":`)); err == nil {
		t.Fatal("a broken payload decoded")
	}
}

// The ledger keeps a payload byte for byte: a retry's payload is
// compared with it, and the backends are promised the canonical form.
// json.Marshal wrote "a<b" as "a\u003cb".
func TestEncodeKeepsThePayloadBytes(t *testing.T) {
	p := "{\"note\":\"a<b>&c \u2028\",\"n\":1}"
	o := Order{Sale: "s1", BuyerID: "b1", Token: "5tq3xzd0y7k2a", AdmittedAt: time.Now().UTC(), Payload: json.RawMessage(p)}
	b, err := o.encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeOrder(b)
	if err != nil || string(got.Payload) != p {
		t.Fatalf("payload %s came back as %s (%v)", p, got.Payload, err)
	}
}

func BenchmarkDecodeOrder(b *testing.B) {
	data, _ := json.Marshal(Order{Sale: "s1", BuyerID: "buyer-12345", Token: "5tq3xzd0y7k2a", AdmittedAt: time.Now().UTC()})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeOrder(data); err != nil {
			b.Fatal(err)
		}
	}
}
