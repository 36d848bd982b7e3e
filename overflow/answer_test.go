package overflow

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestEveryReasonRendersAProblem(t *testing.T) {
	r := &Renderer{}
	for _, reason := range Reasons() {
		if reason == Admitted || reason == Replayed {
			continue
		}
		t.Run(string(reason), func(t *testing.T) {
			a := r.Render(Problem{Reason: reason, Sale: "s1"})
			if a.Status() < 400 || a.Status() != reason.Status() {
				t.Fatalf("status %d", a.Status())
			}
			var doc map[string]any
			if err := json.Unmarshal(a.JSON(), &doc); err != nil {
				t.Fatal(err)
			}
			if doc["reason"] != string(reason) || doc["status"] != float64(a.Status()) || doc["title"] == "" || doc["sale"] != "s1" {
				t.Fatalf("problem document %s", a.JSON())
			}
		})
	}
}

func TestWriteSetsHeaders(t *testing.T) {
	r := &Renderer{}
	a := r.Render(Problem{Reason: QueueFull, RetryAfter: 2500 * time.Millisecond})
	w := httptest.NewRecorder()
	a.Write(w, false)
	if w.Code != 429 || w.Header().Get("Retry-After") != "3" || w.Header().Get("Cache-Control") != "no-store" ||
		w.Header().Get("Content-Type") != "application/problem+json" || !strings.Contains(w.Body.String(), `"retry_after":3`) {
		t.Fatalf("%d %v %s", w.Code, w.Header(), w.Body)
	}
	w = httptest.NewRecorder()
	a.Write(w, true)
	if !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") || !strings.Contains(w.Body.String(), "try again in 3 seconds") {
		t.Fatalf("html: %v %s", w.Header(), w.Body)
	}
}

func TestOperatorSoldOutPage(t *testing.T) {
	r := &Renderer{SoldOutHTML: []byte("<h1>All gone, see you next drop</h1>")}
	w := httptest.NewRecorder()
	r.Render(Problem{Reason: SoldOut}).Write(w, true)
	if w.Code != 410 || w.Body.String() != "<h1>All gone, see you next drop</h1>" {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	// API clients still get the problem document.
	w = httptest.NewRecorder()
	r.Render(Problem{Reason: SoldOut}).Write(w, false)
	if !strings.Contains(w.Body.String(), `"reason":"sold_out"`) {
		t.Fatalf("%s", w.Body)
	}
}

func TestHTMLEscapesDetail(t *testing.T) {
	w := httptest.NewRecorder()
	(&Renderer{}).Render(Problem{Reason: BadRequest, Detail: "<script>x</script>"}).Write(w, true)
	if strings.Contains(w.Body.String(), "<script>") {
		t.Fatalf("unescaped: %s", w.Body)
	}
}

func TestWantsHTML(t *testing.T) {
	for accept, want := range map[string]bool{
		"text/html,application/xhtml+xml,*/*;q=0.8": true,
		"application/json":                          false,
		"*/*":                                       false,
		"":                                          false,
	} {
		req := httptest.NewRequest("GET", "/", nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		if got := WantsHTML(req); got != want {
			t.Errorf("WantsHTML(%q) = %v", accept, got)
		}
	}
}

func ExampleRenderer_Render() {
	a := (&Renderer{}).Render(Problem{Reason: SoldOut, Sale: "sneakers"})
	w := httptest.NewRecorder()
	a.Write(w, false)
	fmt.Println(w.Code, w.Header().Get("Content-Type"))
	fmt.Print(w.Body.String())
	// Output:
	// 410 application/problem+json
	// {"type":"https://sluice.dev/problems/sold-out","title":"Sold out","status":410,"detail":"Every item of this sale is taken. A returned one goes on sale.","reason":"sold_out","sale":"sneakers"}
}

// No answer's detail shows a route's template ("{sale}"): a buyer or a
// client reads it as it is. The proof's names its challenge's URL.
func TestDetailsHoldNoTemplate(t *testing.T) {
	r := &Renderer{}
	for _, reason := range Reasons() {
		if reason == Admitted || reason == Replayed {
			continue
		}
		for _, p := range []Problem{{Reason: reason}, {Reason: reason, Sale: "s1", Line: "/v1/sales/s1/line/challenge"}} {
			var doc struct{ Detail string }
			if err := json.Unmarshal(r.Render(p).json, &doc); err != nil {
				t.Fatal(err)
			}
			if regexp.MustCompile(`\{[a-z_]+\}`).MatchString(doc.Detail) {
				t.Errorf("%s: detail %q holds a template", reason, doc.Detail)
			}
		}
	}
	var doc struct{ Detail string }
	_ = json.Unmarshal(r.Render(Problem{Reason: ProofRequired, Sale: "s1", Line: "/v1/sales/s1/line/challenge"}).json, &doc)
	if !strings.Contains(doc.Detail, "GET /v1/sales/s1/line/challenge ") {
		t.Errorf("proof_required: %q names no challenge URL", doc.Detail)
	}
}
