package ledger

import (
	"errors"
	"strings"
	"testing"
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
