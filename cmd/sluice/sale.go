package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"sluice/admission"
	"sluice/internal/ledger"
	"sluice/internal/proof"
)

const saleUsage = `Usage: sluice sale COMMAND [NAME] [flags]

Makes and changes a running gate's sales over its admin API (the ops
listener's /admin/, which the gate serves with --admin-token).

Commands:
  list                   every sale: state, stock, what is left, the window
  show NAME              one sale's settings and counts
  create NAME --stock N [settings]
  create NAME --variant V=N... [settings]
                         a new sale (an existing one is refused: use update)
  update NAME [settings] change the settings given, keep the others
  open NAME              start selling now: starts_at now, a past ends_at removed
  close NAME             stop selling now: ends_at now

Settings (create and update):
  --stock N  --per-buyer N  --overbook N
  --variant V=N                   a variant (size, colour) and its stock, once
                                  per variant: the sale's stock is their sum,
                                  an order names one, per_buyer counts them all;
                                  update changes the variants given
  --starts-at T  --ends-at T      RFC 3339 (2026-12-01T10:00:00Z), "now",
                                  "+10m" (from now), or "none" to remove
  --waiting-room[=false]  --line-opens D  --pass-ttl D  --claim-window D
  --line-limit N  --line-per-address N  --poll-rate N  --join-proof altcha|none
  --proof-max-number N
  --rate R  --burst N  --queue-bound N  --backend-rate R  --max-wait D
  --payload-schema FILE           a JSON Schema file for orders' payload
                                  ("none" removes it)

The admin token is read from --admin-token-file, else SLUICE_ADMIN_TOKEN or
SLUICE_ADMIN_TOKEN_FILE (a file: a trailing newline is dropped). The gate
is found at --ops, else SLUICE_OPS, else the gate's own SLUICE_OPS_LISTEN.

Examples:
  export SLUICE_ADMIN_TOKEN=change-me
  sluice sale create s1 --stock 2
  sluice sale create drop --stock 300 --waiting-room --starts-at +2m --pass-ttl 2m
  sluice sale create sneaker --variant us9=120 --variant us10=200 --starts-at +5m
  sluice sale update s1 --stock 5
  sluice sale update sneaker --variant us9=150
  sluice sale show s1 --json

Flags:
`

// saleSettings are the flags of create and update, as the admin API's
// fields. Only the flags given are sent.
type saleSettings struct {
	fs     *flag.FlagSet
	fields map[string]any
}

func (s *saleSettings) intFlag(name, field, help string) {
	s.fs.Func(name, help, func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("want a whole number >= 0")
		}
		s.fields[field] = n
		return nil
	})
}

func (s *saleSettings) floatFlag(name, field, help string) {
	s.fs.Func(name, help, func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 {
			return fmt.Errorf("want a number >= 0")
		}
		s.fields[field] = f
		return nil
	})
}

func (s *saleSettings) durationFlag(name, field, help string) {
	s.fs.Func(name, help, func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("want a duration like 90s or 15m")
		}
		s.fields[field] = d.String()
		return nil
	})
}

func (s *saleSettings) timeFlag(name, field, help string, now func() time.Time) {
	s.fs.Func(name, help, func(v string) error {
		t, none, err := parseSaleTime(v, now())
		if err != nil {
			return err
		}
		if none {
			s.fields[field] = nil
		} else {
			s.fields[field] = t.UTC().Format(time.RFC3339Nano)
		}
		return nil
	})
}

// parseSaleTime reads RFC 3339, "now", "+D" from now, or "none".
func parseSaleTime(v string, now time.Time) (t time.Time, none bool, err error) {
	switch {
	case v == "none":
		return time.Time{}, true, nil
	case v == "now":
		return now, false, nil
	case strings.HasPrefix(v, "+"):
		d, err := time.ParseDuration(v[1:])
		if err != nil {
			return t, false, fmt.Errorf("want +DURATION like +10m")
		}
		return now.Add(d), false, nil
	}
	t, err = time.Parse(time.RFC3339, v)
	if err != nil {
		return t, false, fmt.Errorf("want RFC 3339 like 2026-12-01T10:00:00Z, now, +10m or none")
	}
	return t, false, nil
}

func newSaleSettings(fs *flag.FlagSet, now func() time.Time) *saleSettings {
	s := &saleSettings{fs: fs, fields: map[string]any{}}
	s.intFlag("stock", "stock", "how many orders the sale admits")
	s.intFlag("per-buyer", "per_buyer", "orders one buyer may hold (default 1)")
	s.intFlag("overbook", "overbook", "orders admitted beyond the stock")
	fs.Func("variant", "`V=N`: a variant of the sale and its stock, once per variant (--variant us9=120 --variant us10=200)", func(v string) error {
		name, n, ok := strings.Cut(v, "=")
		stock, err := strconv.ParseInt(n, 10, 64)
		switch {
		case !ok || err != nil || stock < 0:
			return fmt.Errorf("want NAME=STOCK like us9=120")
		case !ledger.ValidVariantName(name):
			return fmt.Errorf("%q is not a variant name: 1-64 of a-z 0-9 _ -, starting with a letter or digit", name)
		}
		vs, _ := s.fields["variants"].(map[string]int64)
		if vs == nil {
			vs = map[string]int64{}
			s.fields["variants"] = vs
		}
		if _, twice := vs[name]; twice {
			return fmt.Errorf("variant %s given twice", name)
		}
		vs[name] = stock
		return nil
	})
	s.timeFlag("starts-at", "starts_at", "when the sale opens: RFC 3339, now, +10m, or none", now)
	s.timeFlag("ends-at", "ends_at", "when the sale closes: RFC 3339, now, +1h, or none", now)
	fs.BoolFunc("waiting-room", "buyers join a line and order with a pass (--waiting-room=false: none)", func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false")
		}
		s.fields["waiting_room"] = b
		return nil
	})
	s.durationFlag("line-opens", "line_opens", "how long before starts_at the line takes buyers (default 15m)")
	s.durationFlag("pass-ttl", "pass_ttl", "how long a buyer whose turn came may take to order (default 2m)")
	s.durationFlag("claim-window", "claim_window", "how long a buyer whose turn is offered has to claim it (ask for the ticket) before it lapses (default 15s)")
	s.intFlag("line-limit", "line_limit", "most tickets in the line (default 20 x stock)")
	s.floatFlag("poll-rate", "poll_rate", "ticket polls a second the sale's gates answer in all: the line opens over its length over this, front first (default 10000)")
	s.intFlag("line-per-address", "line_per_address", "most tickets one client address (IPv4, IPv6 /56) takes in the line (0: no bound)")
	fs.Func("join-proof", "each join of the line pays a proof of work: altcha, or none (none: no proof)", func(v string) error {
		switch v {
		case ledger.JoinProofAltcha:
			s.fields["join_proof"] = v
		case "none", "":
			s.fields["join_proof"] = ""
		default:
			return fmt.Errorf("want %s or none", ledger.JoinProofAltcha)
		}
		return nil
	})
	s.intFlag("proof-max-number", "proof_max_number", fmt.Sprintf("the join proof's difficulty: a solver tries half of it on average (0: the default; at most %d)", ledger.MaxProofMaxNumber))
	s.floatFlag("rate", "rate", "admissions per second of this sale, per gate (0: no limit)")
	s.intFlag("burst", "burst", "the rate's burst")
	s.intFlag("queue-bound", "queue_bound", "answer busy while this many orders wait for the backend (0: none)")
	s.floatFlag("backend-rate", "backend_rate", "most orders per second the drain sends to the backend (0: no cap)")
	s.durationFlag("max-wait", "max_wait", "bound the queue so that a 202 is decided within this")
	fs.Func("payload-schema", "`FILE` holding a JSON Schema for orders' payload (none: remove it)", func(v string) error {
		if v == "none" {
			s.fields["payload_schema"] = nil
			return nil
		}
		raw, err := os.ReadFile(v)
		if err != nil {
			return err
		}
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			return fmt.Errorf("%s is not a JSON object: %w", v, err)
		}
		s.fields["payload_schema"] = doc
		return nil
	})
	return s
}

// adminClient calls a gate's admin API.
type adminClient struct {
	base, token string
	http        *http.Client
}

// adminError is an answer of the admin API other than success, told in
// words that say what to do.
type adminError struct {
	status int
	reason string
	msg    string
}

func (e *adminError) Error() string { return e.msg }

func (c *adminClient) do(ctx context.Context, method, path string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the gate's ops listener at %s (is sluice serve running, with --ops-listen there? set --ops): %w", c.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode < 300 {
		return raw, nil
	}
	var p struct {
		Reason string `json:"reason"`
		Detail string `json:"detail"`
	}
	_ = json.Unmarshal(raw, &p)
	e := &adminError{status: resp.StatusCode, reason: p.Reason}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		e.msg = "the gate refused the admin token: set SLUICE_ADMIN_TOKEN (or --admin-token-file) to the gate's admin token"
	case p.Reason == "not_found" && p.Detail != "":
		e.msg = p.Detail
	case p.Reason == "":
		e.msg = fmt.Sprintf("%s answered %s: is it a sluice ops listener? (--ops)", c.base, resp.Status)
	default:
		e.msg = p.Detail
	}
	return nil, e
}

// runSale is sluice sale.
func runSale(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sluice sale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), saleUsage)
		fs.PrintDefaults()
	}
	ops := fs.String("ops", "http://127.0.0.1:9464", "the gate's ops listener (its --ops-listen; else SLUICE_OPS, else the gate's SLUICE_OPS_LISTEN)")
	tokenFile := fs.String("admin-token-file", "", "read the admin token from this `file` (else SLUICE_ADMIN_TOKEN, or the file SLUICE_ADMIN_TOKEN_FILE names)")
	asJSON := fs.Bool("json", false, "print the admin API's JSON instead of text")
	check := fs.Bool("check", false, checkHelp)
	settings := newSaleSettings(fs, time.Now)
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fs.SetOutput(stdout)
		fs.Usage()
		if len(args) == 0 {
			return &exitError{code: 2, err: errors.New("sale: which command? list, show, create, update, open or close")}
		}
		return flag.ErrHelp
	}
	cmd, rest := args[0], args[1:]
	// The sale's name may come before the flags or after them.
	var name string
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		name, rest = rest[0], rest[1:]
	}
	if err := parseFlags(fs, rest, stdout, stderr); err != nil {
		return err
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
		if err := parseFlags(fs, fs.Args()[1:], stdout, stderr); err != nil {
			return err
		}
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("sale %s: unexpected argument %q", cmd, fs.Arg(0))}
	}
	// No SLUICE_* environment here: a gate's SLUICE_BACKEND_RATE in the
	// shell must not become a sale's backend_rate.
	needsName := map[string]bool{"show": true, "create": true, "update": true, "open": true, "close": true}
	switch {
	case cmd != "list" && !needsName[cmd]:
		return usageError("sluice sale", fmt.Errorf("sale: unknown command %q: list, show, create, update, open or close", cmd))
	case needsName[cmd] && name == "":
		return &exitError{code: 2, err: fmt.Errorf("sale %s: which sale? sluice sale %s NAME", cmd, cmd)}
	case needsName[cmd] && !ledger.ValidSaleName(name):
		return &exitError{code: 2, err: fmt.Errorf("sale %s: %q is not a sale name: 1-64 of a-z 0-9 _ -, starting with a letter or digit", cmd, name)}
	case len(settings.fields) > 0 && cmd != "create" && cmd != "update":
		return &exitError{code: 2, err: fmt.Errorf("sale %s takes no settings: sluice sale update %s ... changes them", cmd, name)}
	case cmd == "create" && settings.fields["stock"] == nil && settings.fields["variants"] == nil:
		return &exitError{code: 2, err: fmt.Errorf("sale create %s: --stock N (or --variant V=N, once per variant) is required", name)}
	case cmd == "update" && len(settings.fields) == 0:
		return &exitError{code: 2, err: fmt.Errorf("sale update %s: nothing to change: give settings such as --stock N (see sluice sale --help)", name)}
	}
	token, err := adminToken(*tokenFile)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("sale: %w", err)}
	}
	if token == "" {
		return &exitError{code: 2, err: errors.New("sale: no admin token: set SLUICE_ADMIN_TOKEN, SLUICE_ADMIN_TOKEN_FILE or --admin-token-file to the gate's admin token")}
	}
	base := opsBase(fs, *ops)
	if u, err := url.Parse(base); err != nil || u.Host == "" {
		return &exitError{code: 2, err: fmt.Errorf("sale: --ops %q: want the gate's ops listener, host:port or http://host:port", *ops)}
	}
	if *check {
		return checked(stdout, strings.TrimSpace("sale "+cmd+" "+name)+" at "+base)
	}
	c := &adminClient{base: base, token: token, http: &http.Client{Timeout: 15 * time.Second}}
	path := "/admin/sales/" + url.PathEscape(name)

	var raw []byte
	switch cmd {
	case "list":
		raw, err = c.do(ctx, "GET", "/admin/sales", nil)
	case "show":
		raw, err = c.do(ctx, "GET", path, nil)
	case "create":
		if _, gerr := c.do(ctx, "GET", path, nil); gerr == nil {
			return fmt.Errorf("sale create %s: the sale exists: change it with sluice sale update %s", name, name)
		} else if ae := (*adminError)(nil); !errors.As(gerr, &ae) || ae.reason != "unknown_sale" {
			return fmt.Errorf("sale create %s: %w", name, gerr)
		}
		raw, err = c.do(ctx, "PUT", path, settings.fields)
	case "update":
		raw, err = c.do(ctx, "PATCH", path, settings.fields)
	case "open", "close":
		var cur admission.SaleReport
		if raw, err = c.do(ctx, "GET", path, nil); err == nil {
			err = json.Unmarshal(raw, &cur)
		}
		if err == nil {
			raw, err = c.do(ctx, "PATCH", path, windowChange(cmd, cur.Config, time.Now()))
		}
	}
	var ae *adminError
	if errors.As(err, &ae) && ae.reason == "unknown_sale" {
		return fmt.Errorf("sale %s: there is no sale %q: sluice sale list shows them, sluice sale create %s --stock N makes it", cmd, name, name)
	}
	if err != nil {
		return fmt.Errorf("sale %s: %w", cmd, err)
	}
	if *asJSON {
		_, err := stdout.Write(raw)
		return err
	}
	if cmd == "list" {
		var l struct {
			Sales []admission.SaleReport `json:"sales"`
		}
		if err := json.Unmarshal(raw, &l); err != nil {
			return fmt.Errorf("sale list: not sluice's answer: %w", err)
		}
		writeSaleList(stdout, l.Sales, time.Now())
		return nil
	}
	var r admission.SaleReport
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("sale %s: not sluice's answer: %w", cmd, err)
	}
	writeSale(stdout, r, time.Now())
	warnings := r.Warnings
	if cmd == "update" && r.State == "closed" && settings.fields["ends_at"] != nil && !r.EndsAt.IsZero() {
		warnings = append(warnings, "ends_at "+r.EndsAt.UTC().Format(time.RFC3339)+" has passed: the sale is closed and takes no order")
	}
	for _, w := range warnings {
		if strings.Contains(w, "has passed") {
			w = fmt.Sprintf("%s: sluice sale open %s sells now", strings.TrimSuffix(w, " (PATCH ends_at to a later time or null to sell)"), name)
		}
		fmt.Fprintf(stderr, "sluice: warning: sale %s: %s\n", name, w)
	}
	return nil
}

// windowChange is the PATCH of open (selling from now on: starts_at now
// unless it passed, a past ends_at removed) or close (ends_at now; a
// start still ahead is removed, as a window must end after it starts).
func windowChange(cmd string, cfg ledger.Sale, now time.Time) map[string]any {
	stamp := now.UTC().Format(time.RFC3339Nano)
	p := map[string]any{}
	if cmd == "open" {
		if !cfg.StartsAt.IsZero() && cfg.StartsAt.After(now) {
			p["starts_at"] = stamp
		}
		if !cfg.EndsAt.IsZero() && !cfg.EndsAt.After(now) {
			p["ends_at"] = nil
		}
		return p
	}
	p["ends_at"] = stamp
	if !cfg.StartsAt.IsZero() && !cfg.StartsAt.Before(now) {
		p["starts_at"] = nil
	}
	return p
}

func window(r admission.SaleReport, now time.Time) string {
	switch {
	case !r.StartsAt.IsZero() && now.Before(r.StartsAt):
		return "opens in " + r.StartsAt.Sub(now).Round(time.Second).String()
	case !r.EndsAt.IsZero() && now.Before(r.EndsAt):
		return "closes in " + r.EndsAt.Sub(now).Round(time.Second).String()
	case !r.EndsAt.IsZero():
		return "ended " + r.EndsAt.UTC().Format(time.RFC3339)
	}
	return "-"
}

func writeSaleList(w io.Writer, sales []admission.SaleReport, now time.Time) {
	if len(sales) == 0 {
		fmt.Fprintln(w, "no sales: sluice sale create NAME --stock N makes one")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SALE\tSTATE\tSTOCK\tLEFT\tADMITTED\tPER BUYER\tWINDOW\tWAITING ROOM")
	for _, s := range sales {
		room := "-"
		if s.Config.WaitingRoom {
			room = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", s.Sale, s.State, s.Stock, s.Remaining, s.Admitted, s.PerBuyer, window(s, now), room)
	}
	tw.Flush()
}

func writeSale(w io.Writer, r admission.SaleReport, now time.Time) {
	cfg := r.Config
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
	row("sale", r.Sale)
	row("state", r.State)
	row("stock", fmt.Sprintf("%d (%d left, %d admitted, %d queued)", r.Stock, r.Remaining, r.Admitted, r.QueueDepth))
	for _, v := range cfg.VariantNames() {
		vs := r.Variants[v]
		row("variant "+v, fmt.Sprintf("%d (%d left, %d admitted)", vs.Stock, vs.Remaining, vs.Admitted))
	}
	row("per buyer", r.PerBuyer)
	if cfg.Overbook > 0 {
		row("overbook", cfg.Overbook)
	}
	for _, t := range []struct {
		k string
		v time.Time
	}{{"starts at", cfg.StartsAt}, {"ends at", cfg.EndsAt}} {
		if !t.v.IsZero() {
			row(t.k, t.v.UTC().Format(time.RFC3339))
		}
	}
	row("window", window(r, now))
	if cfg.Rate > 0 {
		row("rate", fmt.Sprintf("%g/s, burst %d", cfg.Rate, cfg.Burst))
	} else if cfg.Burst > 0 {
		row("burst", fmt.Sprintf("%d (no rate set)", cfg.Burst))
	}
	if cfg.QueueBound > 0 {
		row("queue bound", cfg.QueueBound)
	}
	if cfg.BackendRate > 0 {
		row("backend rate", fmt.Sprintf("%g/s", cfg.BackendRate))
	}
	if cfg.MaxWait > 0 {
		row("max wait", time.Duration(cfg.MaxWait))
	}
	if cfg.WaitingRoom {
		row("waiting room", fmt.Sprintf("yes: line opens %s before the start, pass %s, at most %d tickets",
			lineOpensBefore(cfg), cfg.PassLifetime(), cfg.LineCap()))
		row("claim window", cfg.ClaimLifetime())
	} else if cfg.LineOpens != 0 || cfg.PassTTL != 0 || cfg.ClaimWindow != 0 || cfg.LineLimit != 0 {
		row("waiting room", fmt.Sprintf("no; when on: line opens %s before the start, pass %s, claim window %s, at most %d tickets",
			lineOpensBefore(cfg), cfg.PassLifetime(), cfg.ClaimLifetime(), cfg.LineCap()))
	}
	if cfg.PollRate > 0 {
		row("poll rate", fmt.Sprintf("%g/s", cfg.PollRate))
	}
	if cfg.LinePerAddress > 0 {
		row("line per address", cfg.LinePerAddress)
	}
	if cfg.JoinProof != "" {
		n := cfg.ProofMaxNumber
		if n <= 0 {
			n = proof.DefaultMaxNumber
		}
		row("join proof", fmt.Sprintf("%s, max number %d", cfg.JoinProof, n))
	} else if cfg.ProofMaxNumber > 0 {
		row("proof max number", fmt.Sprintf("%d (no join proof asked)", cfg.ProofMaxNumber))
	}
	if len(cfg.PayloadSchema) > 0 {
		b, _ := json.Marshal(cfg.PayloadSchema)
		row("payload schema", string(b))
	}
	for _, warn := range r.Warnings {
		row("warning", warn)
	}
	tw.Flush()
}

// lineOpensBefore is how long before the start the line opens, its
// default applied.
func lineOpensBefore(cfg ledger.Sale) time.Duration {
	if cfg.LineOpens <= 0 {
		return ledger.DefaultLineOpens
	}
	return time.Duration(cfg.LineOpens)
}
