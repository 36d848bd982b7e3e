package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
)

// sluice sale makes and changes sales of a running gate over its admin
// API, and says what to fix when it cannot.
func TestSaleCommand(t *testing.T) {
	cfg := gatetest.Config(t)
	cfg.AdminToken = "s3cret"
	s := gatetest.Start(t, cfg)
	ops := s.OpsAddr()
	t.Setenv("SLUICE_ADMIN_TOKEN", "s3cret")
	sale := func(args ...string) (string, error) {
		t.Helper()
		var out, errb bytes.Buffer
		err := run(context.Background(), append([]string{"sale"}, append(args, "--ops", ops)...), &out, &errb)
		return out.String(), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := sale(args...)
		if err != nil {
			t.Fatalf("sluice sale %s: %v", strings.Join(args, " "), err)
		}
		return out
	}

	if out := must("list"); !strings.Contains(out, "no sales") {
		t.Errorf("empty list:\n%s", out)
	}
	schema := filepath.Join(t.TempDir(), "schema.json")
	if err := os.WriteFile(schema, []byte(`{"type":"object","required":["sku"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := must("create", "drop", "--stock", "50", "--per-buyer", "2", "--starts-at", "+1h", "--waiting-room", "--payload-schema", schema)
	for _, want := range []string{`sale +drop`, `state +upcoming`, `stock +50 \(50 left`, `per buyer +2`, `window +opens in `, `waiting room +yes`, `payload schema +.*"required":\["sku"\]`} {
		if !regexp.MustCompile(`(?m)^` + want).MatchString(out) {
			t.Errorf("create: no %q in\n%s", want, out)
		}
	}
	if _, err := sale("create", "drop", "--stock", "5"); err == nil || !strings.Contains(err.Error(), "sluice sale update drop") {
		t.Errorf("create over an existing sale: %v", err)
	}
	out = must("update", "drop", "--stock", "80", "--waiting-room=false", "--payload-schema", "none")
	if !strings.Contains(out, "80 (80 left") || strings.Contains(out, "waiting room") || strings.Contains(out, "payload schema") {
		t.Errorf("update:\n%s", out)
	}
	if out := must("open", "drop"); !regexp.MustCompile(`(?m)^state +open$`).MatchString(out) {
		t.Errorf("open:\n%s", out)
	}
	st := gatetest.Get(t, gatetest.Client(), "http://"+s.APIAddr()+"/v1/sales/drop")
	if st.Str("state") != "open" || st.Body["stock"] != 80.0 {
		t.Errorf("the public view after open: %s", st.Raw)
	}
	if a := gatetest.Order(t, gatetest.Client(), "http://"+s.APIAddr(), "drop", "alice", ""); a.Status != 202 {
		t.Errorf("an order after open: %d %s", a.Status, a.Raw)
	}
	if out := must("close", "drop"); !regexp.MustCompile(`(?m)^state +closed$`).MatchString(out) {
		t.Errorf("close:\n%s", out)
	}
	if a := gatetest.Order(t, gatetest.Client(), "http://"+s.APIAddr(), "drop", "bob", ""); a.Status != 403 || a.Str("reason") != "closed" {
		t.Errorf("an order after close: %d %s", a.Status, a.Raw)
	}
	must("create", "second", "--stock", "3")
	out = must("list")
	if !regexp.MustCompile(`(?m)^drop +closed +80 +79 +1 +2 +ended `).MatchString(out) || !regexp.MustCompile(`(?m)^second +open +3 +3 +0 +1 +- +-$`).MatchString(out) {
		t.Errorf("list:\n%s", out)
	}
	raw := must("show", "second", "--json")
	var r struct {
		Sale   string      `json:"sale"`
		Config ledger.Sale `json:"config"`
	}
	if err := json.Unmarshal([]byte(raw), &r); err != nil || r.Sale != "second" || r.Config.Stock != 3 {
		t.Errorf("show --json: %v %s", err, raw)
	}

	// Errors that say what to fix.
	costly := filepath.Join(t.TempDir(), "costly.json")
	if err := os.WriteFile(costly, []byte(`{"$defs":{"a":{"anyOf":[{"$ref":"#/$defs/b"},{"$ref":"#/$defs/b"},{"$ref":"#/$defs/b"}]},
		"b":{"anyOf":[{"$ref":"#/$defs/c"},{"$ref":"#/$defs/c"},{"$ref":"#/$defs/c"}]},"c":{"anyOf":[{"$ref":"#/$defs/d"},{"$ref":"#/$defs/d"},{"$ref":"#/$defs/d"}]},
		"d":{"anyOf":[{"$ref":"#/$defs/e"},{"$ref":"#/$defs/e"},{"$ref":"#/$defs/e"}]},"e":{"anyOf":[{"$ref":"#/$defs/f"},{"$ref":"#/$defs/f"},{"$ref":"#/$defs/f"}]},
		"f":{"type":"string"}},"$ref":"#/$defs/a"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cycle := filepath.Join(t.TempDir(), "cycle.json")
	if err := os.WriteFile(cycle, []byte(`{"$ref":"#/$defs/a","$defs":{"a":{"allOf":[{"$ref":"#"}]}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"update", "second", "--payload-schema", costly}, "too costly to check"},
		{[]string{"update", "second", "--payload-schema", cycle}, "a $ref cycle"},
		{[]string{"update", "second", "--stock", "999999999", "--overbook", "2"}, "stock + overbook must be at most 1000000000"},
		{[]string{"show", "nope"}, "sluice sale create nope --stock N"},
		{[]string{"create", "third"}, "--stock N (or --variant V=N, once per variant) is required"},
		{[]string{"update", "second"}, "nothing to change"},
		{[]string{"create", "Bad Name", "--stock", "1"}, "is not a sale name"},
		{[]string{"create", "x", "--stock", "1", "--starts-at", "tomorrow"}, "RFC 3339"},
		{[]string{"update", "second", "--starts-at", "+2h", "--ends-at", "+1h"}, "ends_at must be after starts_at"},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"show"}, "which sale?"},
	} {
		if _, err := sale(c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("sluice sale %s: %v, want an error saying %q", strings.Join(c.args, " "), err, c.want)
		}
	}
	t.Setenv("SLUICE_ADMIN_TOKEN", "wrong")
	if _, err := sale("list"); err == nil || !strings.Contains(err.Error(), "refused the admin token") {
		t.Errorf("wrong token: %v", err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := sale("list", "--admin-token-file", tokenFile); err != nil {
		t.Errorf("token from a file: %v", err)
	}
	var out2 bytes.Buffer
	err := run(context.Background(), []string{"sale", "list", "--ops", "127.0.0.1:1"}, &out2, &out2)
	if err == nil || !strings.Contains(err.Error(), "cannot reach the gate's ops listener") {
		t.Errorf("no gate: %v", err)
	}
}

// A config file's sale whose stock and overbook overflow, or whose
// payload_schema could not be checked within its budget, stops the start
// with what to fix.
func TestConfigRefusesUnboundedSales(t *testing.T) {
	for _, c := range []struct{ sale, want string }{
		{"{name: s1, stock: 10, overbook: 9223372036854775807}", "stock + overbook must be at most 1000000000"},
		{`{name: s1, stock: 10, payload_schema: {"$ref": "#/$defs/a", "$defs": {"a": {"anyOf": [{"$ref": "#"}]}}}}`, "a $ref cycle"},
		{`{name: s1, stock: 10, payload_schema: {properties: {tags: {items: {type: integer, minimum: 1}}}}}`, "maxItems on an array"},
	} {
		file := filepath.Join(t.TempDir(), "sluice.yaml")
		if err := os.WriteFile(file, []byte("sales:\n  - "+c.sale+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := parseServe([]string{"--config", file}, io.Discard); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.sale, err, c.want)
		}
	}
}

// CORS origins come from the repeated flag, or the config file's
// cors_origins list; a wildcard or a URL with a path is refused at start.
func TestCORSConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(file, []byte("cors_origins: [\"https://shop.example\", \"http://localhost:3000\"]\ncors_credentials: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseServe([]string{"--config", file}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Gate.CORS.Origins, " "); got != "https://shop.example http://localhost:3000" || !cfg.Gate.CORS.Credentials {
		t.Errorf("from the file: %q credentials %v", got, cfg.Gate.CORS.Credentials)
	}
	cfg, err = parseServe([]string{"--config", file, "--cors-origin", "https://other.example"}, io.Discard)
	if err != nil || strings.Join(cfg.Gate.CORS.Origins, " ") != "https://other.example" {
		t.Errorf("the flag beats the file: %v %v", cfg.Gate.CORS.Origins, err)
	}
	for _, bad := range []string{"*", "https://shop.example/path", "shop.example"} {
		if _, err := parseServe([]string{"--cors-origin", bad}, io.Discard); err == nil || !strings.Contains(err.Error(), "--cors-origin") {
			t.Errorf("--cors-origin %s: %v", bad, err)
		}
	}
}

// Every setting of a sale (each JSON field of ledger.Sale) can be given
// to sluice sale create and update, and sluice sale show shows it: a new
// field without its flag and its row fails here.
func TestSaleSettingsEveryField(t *testing.T) {
	cfg := gatetest.Config(t)
	cfg.AdminToken = "s3cret"
	s := gatetest.Start(t, cfg)
	t.Setenv("SLUICE_ADMIN_TOKEN", "s3cret")
	schema := filepath.Join(t.TempDir(), "schema.json")
	if err := os.WriteFile(schema, []byte(`{"type":"object","required":["sku"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// field: the flag and value that sets it, and the row show prints.
	fields := map[string]struct {
		args []string
		row  string
	}{
		"stock":            {[]string{"--stock", "40"}, `stock +40 \(`},
		"overbook":         {[]string{"--overbook", "3"}, `overbook +3$`},
		"per_buyer":        {[]string{"--per-buyer", "2"}, `per buyer +2$`},
		"starts_at":        {[]string{"--starts-at", "2099-01-01T10:00:00Z"}, `starts at +2099-01-01T10:00:00Z$`},
		"ends_at":          {[]string{"--ends-at", "2099-01-01T12:00:00Z"}, `ends at +2099-01-01T12:00:00Z$`},
		"rate":             {[]string{"--rate", "150"}, `rate +150/s, burst 7$`},
		"burst":            {[]string{"--burst", "7"}, `rate +150/s, burst 7$`},
		"queue_bound":      {[]string{"--queue-bound", "900"}, `queue bound +900$`},
		"backend_rate":     {[]string{"--backend-rate", "60"}, `backend rate +60/s$`},
		"max_wait":         {[]string{"--max-wait", "45s"}, `max wait +45s$`},
		"waiting_room":     {[]string{"--waiting-room"}, `waiting room +yes: `},
		"line_opens":       {[]string{"--line-opens", "20m"}, `waiting room +yes: line opens 20m0s before`},
		"pass_ttl":         {[]string{"--pass-ttl", "90s"}, `waiting room +yes: .*pass 1m30s,`},
		"claim_window":     {[]string{"--claim-window", "20s"}, `claim window +20s$`},
		"line_limit":       {[]string{"--line-limit", "5000"}, `waiting room +yes: .*at most 5000 tickets$`},
		"payload_schema":   {[]string{"--payload-schema", schema}, `payload schema +.*"required":\["sku"\]`},
		"join_proof":       {[]string{"--join-proof", "altcha"}, `join proof +altcha, max number 20000$`},
		"proof_max_number": {[]string{"--proof-max-number", "20000"}, `join proof +altcha, max number 20000$`},
		"line_per_address": {[]string{"--line-per-address", "4"}, `line per address +4$`},
		"poll_rate":        {[]string{"--poll-rate", "2500"}, `poll rate +2500/s$`},
	}
	// variants make the stock (and refuse overbook): a sale of their own.
	apart := map[string]struct {
		args []string
		rows []string
	}{
		"variants": {[]string{"--variant", "us9=3", "--variant", "us10=4"}, []string{`stock +7 \(`, `variant us10 +4 \(4 left`, `variant us9 +3 \(3 left`}},
	}
	typ := reflect.TypeFor[ledger.Sale]()
	var args []string
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if _, ok := apart[name]; ok || name == "name" {
			continue
		}
		f, ok := fields[name]
		if !ok {
			t.Errorf("ledger.Sale's %s: no sluice sale flag in this test: add one to sale.go, its row to writeSale, and both here", name)
			continue
		}
		args = append(args, f.args...)
	}
	run1 := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if err := run(context.Background(), append(args, "--ops", s.OpsAddr()), &out, &errb); err != nil {
			t.Fatalf("sluice %s: %v %s", strings.Join(args, " "), err, errb.String())
		}
		return out.String()
	}
	created := run1(append([]string{"sale", "create", "every"}, args...)...)
	shown := run1("sale", "show", "every")
	for name, f := range fields {
		for what, out := range map[string]string{"create": created, "show": shown} {
			if !regexp.MustCompile(`(?m)^` + f.row).MatchString(out) {
				t.Errorf("%s: sale %s does not show %s (%q):\n%s", name, what, name, f.row, out)
			}
		}
	}
	for name, f := range apart {
		created := run1(append([]string{"sale", "create", "apart-" + name}, f.args...)...)
		shown := run1("sale", "show", "apart-"+name)
		for _, row := range f.rows {
			for what, out := range map[string]string{"create": created, "show": shown} {
				if !regexp.MustCompile(`(?m)^` + row).MatchString(out) {
					t.Errorf("%s: sale %s does not show %q:\n%s", name, what, row, out)
				}
			}
		}
	}
	// update changes each one alone.
	out := run1("sale", "update", "every", "--line-per-address", "9", "--join-proof", "none", "--proof-max-number", "0")
	if !regexp.MustCompile(`(?m)^line per address +9$`).MatchString(out) || strings.Contains(out, "join proof") {
		t.Errorf("update:\n%s", out)
	}
}

// A sale whose window has already passed is made as asked, and said so
// on stderr (most likely a mistyped date).
func TestSaleWithAPastWindowWarns(t *testing.T) {
	cfg := gatetest.Config(t)
	cfg.AdminToken = "s3cret"
	s := gatetest.Start(t, cfg)
	t.Setenv("SLUICE_ADMIN_TOKEN", "s3cret")
	for _, c := range []struct {
		args []string
		warn bool
	}{
		{[]string{"create", "past", "--stock", "5", "--starts-at", "2020-12-01T10:00:00Z", "--ends-at", "2020-12-01T12:00:00Z"}, true},
		{[]string{"create", "ahead", "--stock", "5", "--ends-at", "+1h"}, false},
		{[]string{"update", "ahead", "--ends-at", "2021-01-01T00:00:00Z"}, true},
		{[]string{"close", "ahead"}, false},
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), append(append([]string{"sale"}, c.args...), "--ops", s.OpsAddr()), &out, &errb)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		warned := strings.Contains(errb.String(), "has passed: the sale is closed") && strings.Contains(errb.String(), "sluice sale open")
		if warned != c.warn {
			t.Errorf("%v: stderr %q, want a warning: %v", c.args, errb.String(), c.warn)
		}
	}
}
