package admission

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"

	"sluice/internal/ledger"
	"sluice/overflow"
)

// AdminHandler returns the admin API, for the ops listener: create or
// replace a sale (PUT), change its stock, window, rates or waiting room (PATCH), and read
// it with this gate's counters (GET). Every call needs
// "Authorization: Bearer <token>"; an empty token disables the API.
func (g *Gate) AdminHandler(token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/sales", g.adminList)
	mux.HandleFunc("GET /admin/sales/{sale}", g.adminGet)
	mux.HandleFunc("PUT /admin/sales/{sale}", g.adminPut)
	mux.HandleFunc("PATCH /admin/sales/{sale}", g.adminPatch)
	mux.HandleFunc("POST /admin/orders/{id}/cancel", g.adminCancel)
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token == "" {
			g.render.Write(w, r, overflow.Problem{Reason: overflow.NotFound,
				Detail: "The admin API is off: start the gate with --admin-token (or SLUICE_ADMIN_TOKEN) to turn it on."})
			return
		}
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice-admin"`)
			g.render.Write(w, r, overflow.Problem{Reason: overflow.Unauthorized})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// SaleReport is everything one gate knows of a sale: what the public
// sale endpoint shows, the sale's configuration, and this gate's answers
// by reason since it started. The admin API and the ops console show it.
type SaleReport struct {
	saleView
	Config ledger.Sale `json:"config"`
	// Answers counts this gate's answers for the sale by reason.
	Answers map[string]int64 `json:"answers"`
	Pending int64            `json:"pending"`
	Drained int64            `json:"drained"`
	// DrainAttached: a drain consumer exists for the sale (on any machine).
	DrainAttached bool `json:"drain_attached"`
	// Replication is the sale stream's replica group in a cluster.
	Replication *ledger.Replication `json:"replication,omitempty"`
	Warnings    []string            `json:"warnings,omitempty"`
}

// Report is one sale's report, or false when the gate knows no such sale.
func (g *Gate) Report(name string) (SaleReport, bool) {
	s := g.lookupSale(name)
	if s == nil {
		return SaleReport{}, false
	}
	return g.report(s, g.now()), true
}

// Reports are every sale's reports, by name.
func (g *Gate) Reports() []SaleReport {
	now := g.now()
	out := []SaleReport{}
	for _, s := range *g.sales.Load() {
		out = append(out, g.report(s, now))
	}
	slices.SortFunc(out, func(a, b SaleReport) int { return strings.Compare(a.Sale, b.Sale) })
	return out
}

func (g *Gate) report(s *sale, now time.Time) SaleReport {
	v := SaleReport{saleView: g.view(context.Background(), s, now), Config: *s.cfg.Load(), Answers: map[string]int64{},
		Pending: s.pending.Load(), Drained: s.drained.Load(), DrainAttached: s.draining.Load(),
		Replication: s.replication.Load()}
	for r, c := range s.counters {
		var m dto.Metric
		if c.Write(&m) == nil && m.Counter.GetValue() > 0 {
			v.Answers[string(r)] = int64(m.Counter.GetValue())
		}
	}
	return v
}

func (g *Gate) adminList(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"sales": g.Reports()})
}

func (g *Gate) adminGet(w http.ResponseWriter, r *http.Request) {
	s := g.lookupSale(r.PathValue("sale"))
	if s == nil {
		g.unknownSale.Write(w, false)
		return
	}
	writeJSON(w, http.StatusOK, g.report(s, g.now()))
}

func (g *Gate) adminPut(w http.ResponseWriter, r *http.Request) {
	var cfg ledger.Sale
	if !g.decodeAdmin(w, r, &cfg) {
		return
	}
	cfg.Name = r.PathValue("sale")
	existed := g.lookupSale(cfg.Name) != nil
	status := http.StatusCreated
	if existed {
		status = http.StatusOK
	}
	g.ensure(w, r, cfg, status)
}

// salePatch holds the fields a PATCH may change; absent fields keep their
// value and a null time clears the bound.
type salePatch struct {
	Stock       *int64           `json:"stock"`
	Overbook    *int64           `json:"overbook"`
	PerBuyer    *int64           `json:"per_buyer"`
	StartsAt    *json.RawMessage `json:"starts_at"`
	EndsAt      *json.RawMessage `json:"ends_at"`
	Rate        *float64         `json:"rate"`
	Burst       *int             `json:"burst"`
	QueueBound  *int64           `json:"queue_bound"`
	BackendRate *float64         `json:"backend_rate"`
	MaxWait     *ledger.Duration `json:"max_wait"`
	WaitingRoom *bool            `json:"waiting_room"`
	LineOpens   *ledger.Duration `json:"line_opens"`
	PassTTL     *ledger.Duration `json:"pass_ttl"`
	ClaimWindow *ledger.Duration `json:"claim_window"`
	LineLimit   *int64           `json:"line_limit"`
	PollRate    *float64         `json:"poll_rate"`
	// PayloadSchema replaces the sale's payload_schema; null removes it.
	// Not a pointer: encoding/json sets a pointer to nil for null, which
	// would read as absent.
	PayloadSchema json.RawMessage `json:"payload_schema"`
	// Who may join (Bots and identity).
	JoinProof      *string `json:"join_proof"`
	ProofMaxNumber *int64  `json:"proof_max_number"`
	LinePerAddress *int64  `json:"line_per_address"`
	// Variants changes the stock of the variants it names (and adds the
	// ones the sale does not sell yet); the others keep theirs.
	Variants map[string]int64 `json:"variants"`
}

func (g *Gate) adminPatch(w http.ResponseWriter, r *http.Request) {
	s := g.lookupSale(r.PathValue("sale"))
	if s == nil {
		g.unknownSale.Write(w, false)
		return
	}
	var p salePatch
	if !g.decodeAdmin(w, r, &p) {
		return
	}
	cfg := *s.cfg.Load()
	setIf(&cfg.Stock, p.Stock)
	setIf(&cfg.Overbook, p.Overbook)
	setIf(&cfg.PerBuyer, p.PerBuyer)
	setIf(&cfg.Rate, p.Rate)
	setIf(&cfg.Burst, p.Burst)
	setIf(&cfg.QueueBound, p.QueueBound)
	setIf(&cfg.BackendRate, p.BackendRate)
	setIf(&cfg.MaxWait, p.MaxWait)
	setIf(&cfg.WaitingRoom, p.WaitingRoom)
	setIf(&cfg.LineOpens, p.LineOpens)
	setIf(&cfg.PassTTL, p.PassTTL)
	setIf(&cfg.ClaimWindow, p.ClaimWindow)
	setIf(&cfg.LineLimit, p.LineLimit)
	setIf(&cfg.PollRate, p.PollRate)
	setIf(&cfg.JoinProof, p.JoinProof)
	setIf(&cfg.ProofMaxNumber, p.ProofMaxNumber)
	setIf(&cfg.LinePerAddress, p.LinePerAddress)
	for _, t := range []struct {
		raw *json.RawMessage
		dst *time.Time
	}{{p.StartsAt, &cfg.StartsAt}, {p.EndsAt, &cfg.EndsAt}} {
		if t.raw == nil {
			continue
		}
		if string(*t.raw) == "null" {
			*t.dst = time.Time{}
			continue
		}
		if err := json.Unmarshal(*t.raw, t.dst); err != nil {
			g.render.Write(w, r, overflow.Problem{Reason: overflow.BadRequest, Detail: "starts_at and ends_at are RFC 3339 times or null"})
			return
		}
	}
	if p.Variants != nil {
		merged := maps.Clone(cfg.Variants)
		if merged == nil {
			merged = map[string]int64{}
		}
		maps.Copy(merged, p.Variants)
		cfg.Variants = merged
	}
	if cfg.HasVariants() && p.Stock == nil {
		cfg.Stock = 0 // the variants' sum
	}
	if p.PayloadSchema != nil {
		cfg.PayloadSchema = nil
		if string(p.PayloadSchema) != "null" {
			if err := json.Unmarshal(p.PayloadSchema, &cfg.PayloadSchema); err != nil {
				g.render.Write(w, r, overflow.Problem{Reason: overflow.BadRequest, Detail: "payload_schema is a JSON Schema object, or null to remove it"})
				return
			}
		}
	}
	g.ensure(w, r, cfg, http.StatusOK)
}

func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func (g *Gate) decodeAdmin(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		err = dec.Decode(v)
	}
	if err != nil {
		g.render.Write(w, r, overflow.Problem{Reason: overflow.BadRequest, Detail: "bad sale JSON: " + err.Error()})
		return false
	}
	return true
}

func (g *Gate) ensure(w http.ResponseWriter, r *http.Request, cfg ledger.Sale, status int) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	st, err := g.ledger.EnsureSale(ctx, cfg)
	switch {
	case errors.Is(err, ledger.ErrInvalidSale):
		g.render.Write(w, r, overflow.Problem{Reason: overflow.BadRequest, Detail: err.Error()})
		return
	case err != nil:
		g.log.Error("admin: provision sale", "sale", cfg.Name, "err", err)
		g.render.Write(w, r, overflow.Problem{Reason: overflow.Unavailable, Detail: err.Error()})
		return
	}
	g.UpdateSale(st)
	if st.Line && g.rooms != nil {
		// Its line answers as soon as this answer is out.
		g.rooms.Open(ctx, []string{cfg.Name})
	}
	g.log.Info("admin: sale provisioned", "sale", cfg.Name, "stock", cfg.Stock, "admitted", st.Admitted)
	v := g.report(g.lookupSale(cfg.Name), g.now())
	if !cfg.HasVariants() && int64(st.Admitted) > cfg.Capacity() {
		v.Warnings = append(v.Warnings, "stock is below the orders already admitted: they stay admitted and the sale is sold out")
	}
	for _, name := range st.Sale.VariantNames() {
		if vs := st.Variants[name]; vs.Admitted-vs.Released > vs.Stock {
			v.Warnings = append(v.Warnings, "variant "+name+": stock is below the orders already admitted: they stay admitted and the variant is sold out")
		}
	}
	// A whole sale written with its window already over is most likely a
	// date mistyped (a past year): it is stored as asked, and said so.
	if r.Method == http.MethodPut && !cfg.EndsAt.IsZero() && !g.now().Before(cfg.EndsAt) {
		v.Warnings = append(v.Warnings, "ends_at "+cfg.EndsAt.UTC().Format(time.RFC3339)+" has passed: the sale is closed and takes no order (PATCH ends_at to a later time or null to sell)")
	}
	writeJSON(w, status, v)
}
