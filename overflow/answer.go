package overflow

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Problem describes one diverted answer.
type Problem struct {
	Reason Reason
	// Detail replaces the reason's standard sentence when set.
	Detail string
	// RetryAfter, rounded up to whole seconds, becomes the Retry-After
	// header and the retry_after field; zero leaves both out.
	RetryAfter time.Duration
	// Sale and OrderID are echoed when set (OrderID on already_ordered).
	Sale    string
	OrderID string
	// BackendReason is what the backend said when it refused the order
	// (backend_reason).
	BackendReason string
	// Allow lists the methods a resource takes, for 405 answers.
	Allow string
	// Line is the URL of the sale's waiting-room line (pass_required).
	Line string
	// Path is a JSON pointer into the request body to the value at
	// fault (bad_payload).
	Path string
	// Variants are the variants still on sale (variant_sold_out), or
	// every variant the sale sells (variant_required, unknown_variant).
	Variants []string
}

// Answer is a Problem rendered once, to be written many times. It is
// immutable and safe for concurrent use.
type Answer struct {
	status     int
	json       []byte
	html       []byte
	retryAfter []string
	allow      []string
	// The same values as bytes, for Respond.
	retryAfterB []byte
	allowB      []byte
}

// Header values shared by every answer: assigned to the header map without
// allocating or canonicalising.
var (
	ctProblem = []string{"application/problem+json"}
	ctHTML    = []string{"text/html; charset=utf-8"}
	noStore   = []string{"no-store"}
	nosniff   = []string{"nosniff"}
)

// Renderer turns Problems into Answers. The zero value renders the
// built-in pages.
type Renderer struct {
	// SoldOutHTML, when set, is served to browsers in place of the
	// sold-out page (an operator's own page, as it is).
	SoldOutHTML []byte
	// Pages are the HTML pages' templates (LoadPages); nil means the
	// built-in ones.
	Pages *Pages
}

type problemDoc struct {
	Type    string `json:"type"`
	Title   string `json:"title"`
	Status  int    `json:"status"`
	Detail  string `json:"detail"`
	Reason  Reason `json:"reason"`
	Sale    string `json:"sale,omitempty"`
	OrderID string `json:"order_id,omitempty"`
	// BackendReason is the backend's own reason for refusing the order.
	BackendReason string `json:"backend_reason,omitempty"`
	RetryAfter    int    `json:"retry_after,omitempty"`
	Line          string `json:"line,omitempty"`
	Path          string `json:"path,omitempty"`
	// VariantsLeft (variant_sold_out) and Variants (variant_required,
	// unknown_variant) list the sale's variants.
	VariantsLeft []string `json:"variants_left,omitempty"`
	Variants     []string `json:"variants,omitempty"`
}

// Render renders p.
func (r *Renderer) Render(p Problem) *Answer {
	info, ok := catalog[p.Reason]
	if !ok {
		info = reasonInfo{http.StatusInternalServerError, "Internal error", "Something went wrong."}
	}
	detail := p.Detail
	switch {
	case detail != "":
	case p.Reason == ProofRequired && p.Line != "":
		// The challenge's own URL, not a route's template.
		detail = "This line asks a proof of work per ticket: solve GET " + p.Line + " and send it in the Sluice-Proof header (or the altcha form field)."
	default:
		detail = info.detail
	}
	secs := 0
	if p.RetryAfter > 0 {
		secs = int((p.RetryAfter + time.Second - 1) / time.Second)
	}
	doc := problemDoc{
		Type:          "https://sluice.dev/problems/" + strings.ReplaceAll(string(p.Reason), "_", "-"),
		Title:         info.title,
		Status:        info.status,
		Detail:        detail,
		Reason:        p.Reason,
		Sale:          p.Sale,
		OrderID:       p.OrderID,
		BackendReason: p.BackendReason,
		RetryAfter:    secs,
		Line:          p.Line,
		Path:          p.Path,
	}
	if p.Reason == VariantSoldOut {
		doc.VariantsLeft = p.Variants
	} else {
		doc.Variants = p.Variants
	}
	js, _ := json.Marshal(doc) // plain strings and ints always marshal
	a := &Answer{status: info.status, json: append(js, '\n')}
	if secs > 0 {
		a.retryAfter = []string{strconv.Itoa(secs)}
		a.retryAfterB = []byte(a.retryAfter[0])
	}
	if p.Allow != "" {
		a.allow = []string{p.Allow}
		a.allowB = []byte(p.Allow)
	}
	if p.Reason == SoldOut && r != nil && len(r.SoldOutHTML) > 0 {
		a.html = r.SoldOutHTML
	} else {
		a.html = r.pages().problemHTML(ProblemPage{Title: doc.Title, Detail: doc.Detail, Status: doc.Status,
			Reason: doc.Reason, Sale: doc.Sale, OrderID: doc.OrderID, RetryAfter: doc.RetryAfter, Line: doc.Line,
			BackendReason: doc.BackendReason, Path: doc.Path, Variants: p.Variants})
	}
	return a
}

// Status is the answer's HTTP status.
func (a *Answer) Status() int { return a.status }

// JSON is the problem+json body.
func (a *Answer) JSON() []byte { return a.json }

// Write writes the answer, as HTML when html is true.
func (a *Answer) Write(w http.ResponseWriter, html bool) {
	h := w.Header()
	h["Cache-Control"] = noStore
	h["X-Content-Type-Options"] = nosniff
	if a.retryAfter != nil {
		h["Retry-After"] = a.retryAfter
	}
	if a.allow != nil {
		h["Allow"] = a.allow
	}
	body := a.json
	if html {
		h["Content-Type"] = ctHTML
		body = a.html
	} else {
		h["Content-Type"] = ctProblem
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(body)
}

// WantsHTML says whether the request comes from a browser that would
// rather read a page than a problem document.
func WantsHTML(r *http.Request) bool {
	acc := r.Header["Accept"]
	return len(acc) > 0 && strings.Contains(acc[0], "text/html")
}

// Write renders p and writes it: for answers that are not on a hot path.
func (r *Renderer) Write(w http.ResponseWriter, req *http.Request, p Problem) {
	r.Render(p).Write(w, WantsHTML(req))
}
