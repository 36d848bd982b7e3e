package admission

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"

	"sluice/internal/ledger"
	"sluice/overflow"
)

// AdminHandler returns the admin API, for the ops listener: create or
// replace a sale (PUT), change its stock, window or rates (PATCH), and read
// it with this gate's counters (GET). Every call needs
// "Authorization: Bearer <token>"; an empty token disables the API.
func (g *Gate) AdminHandler(token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/sales", g.adminList)
	mux.HandleFunc("GET /admin/sales/{sale}", g.adminGet)
	mux.HandleFunc("PUT /admin/sales/{sale}", g.adminPut)
	mux.HandleFunc("PATCH /admin/sales/{sale}", g.adminPatch)
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

type adminSale struct {
	saleView
	Config   ledger.Sale      `json:"config"`
	Answers  map[string]int64 `json:"answers"`
	Pending  int64            `json:"pending"`
	Drained  int64            `json:"drained"`
	Warnings []string         `json:"warnings,omitempty"`
}

func (g *Gate) adminView(s *sale) adminSale {
	v := adminSale{saleView: g.view(context.Background(), s, g.now()), Config: *s.cfg.Load(), Answers: map[string]int64{},
		Pending: s.pending.Load(), Drained: s.drained.Load()}
	for r, c := range s.counters {
		var m dto.Metric
		if c.Write(&m) == nil && m.Counter.GetValue() > 0 {
			v.Answers[string(r)] = int64(m.Counter.GetValue())
		}
	}
	return v
}

func (g *Gate) adminList(w http.ResponseWriter, _ *http.Request) {
	out := []adminSale{}
	for _, s := range *g.sales.Load() {
		out = append(out, g.adminView(s))
	}
	writeJSON(w, http.StatusOK, map[string]any{"sales": out})
}

func (g *Gate) adminGet(w http.ResponseWriter, r *http.Request) {
	s := g.lookupSale(r.PathValue("sale"))
	if s == nil {
		g.unknownSale.Write(w, false)
		return
	}
	writeJSON(w, http.StatusOK, g.adminView(s))
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
	Stock      *int64           `json:"stock"`
	Overbook   *int64           `json:"overbook"`
	PerBuyer   *int64           `json:"per_buyer"`
	StartsAt   *json.RawMessage `json:"starts_at"`
	EndsAt     *json.RawMessage `json:"ends_at"`
	Rate       *float64         `json:"rate"`
	Burst      *int             `json:"burst"`
	QueueBound *int64           `json:"queue_bound"`
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
	g.log.Info("admin: sale provisioned", "sale", cfg.Name, "stock", cfg.Stock, "admitted", st.Admitted)
	v := g.adminView(g.lookupSale(cfg.Name))
	if int64(st.Admitted) > cfg.Capacity() {
		v.Warnings = append(v.Warnings, "stock is below the orders already admitted: they stay admitted and the sale is sold out")
	}
	writeJSON(w, status, v)
}
