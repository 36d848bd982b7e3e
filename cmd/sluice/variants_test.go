package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sluice/internal/testkit/gatetest"
)

// A sale with variants through the built binary, as a shop sets one up:
// in the config file (its variants key), then sluice sale create
// --variant, update --variant and show per variant, and sluice status
// with each variant's left of its stock; --check takes them all.
func TestSaleWithVariantsThroughTheBinary(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(conf, []byte("sales:\n  - name: tee\n    variants: {s: 2, m: 3, l: 1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "serve", "--config", conf, "--data-dir", dir, "--check").CombinedOutput(); err != nil {
		t.Fatalf("serve --check with a sale with variants: %v\n%s", err, out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("sales:\n  - name: tee\n    stock: 7\n    variants: {s: 2, m: 3}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "serve", "--config", bad, "--data-dir", dir, "--check").CombinedOutput(); err == nil || !strings.Contains(string(out), "variants") {
		t.Fatalf("a stock that is not the variants' sum: %v\n%s", err, out)
	}
	p := startServe(t, "--config", conf, "--data-dir", dir, "--admin-token", "s3cret", "--no-demo")
	api := "http://" + p.api
	sluice := func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "SLUICE_ADMIN_TOKEN=s3cret", "SLUICE_OPS="+p.ops)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := sluice(args...)
		if err != nil {
			t.Fatalf("sluice %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	matches := func(what, out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !regexp.MustCompile(`(?m)` + w).MatchString(out) {
				t.Errorf("%s: no %q in\n%s", what, w, out)
			}
		}
	}
	matches("the config file's sale", must("sale", "show", "tee"), `^stock +6 \(6 left`, `^variant l +1 \(1 left, 0 admitted\)$`, `^variant m +3 \(3 left`, `^variant s +2 \(2 left`)

	must("sale", "create", "drop", "--variant", "us9=120", "--variant", "us10=200", "--check")
	if _, err := gatetest.Client().Get(api + "/v1/sales/drop"); err != nil {
		t.Fatal(err)
	}
	if a := gatetest.Get(t, gatetest.Client(), api+"/v1/sales/drop"); a.Status != 404 {
		t.Fatalf("sale create --check made the sale: %d %s", a.Status, a.Raw)
	}
	out := must("sale", "create", "drop", "--variant", "us9=120", "--variant", "us10=200")
	matches("create", out, `^stock +320 \(320 left`, `^variant us10 +200 \(200 left, 0 admitted\)$`, `^variant us9 +120 \(120 left, 0 admitted\)$`)
	for i, v := range []string{"us9", "us9", "us10"} {
		if a := gatetest.OrderVariant(t, gatetest.Client(), api, "drop", fmt.Sprint("b", i), v, ""); a.Status != 202 {
			t.Fatalf("order %s: %d %s", v, a.Status, a.Raw)
		}
	}
	out = must("sale", "update", "drop", "--variant", "us9=150")
	matches("update", out, `^stock +350 \(347 left, 3 admitted`, `^variant us10 +200 \(199 left, 1 admitted\)$`, `^variant us9 +150 \(148 left, 2 admitted\)$`)
	must("sale", "update", "drop", "--variant", "us10=1", "--check")
	out = must("sale", "update", "drop", "--variant", "us10=1")
	matches("update to sold out", out, `^variant us10 +1 \(0 left, 1 admitted\)$`)
	if a := gatetest.OrderVariant(t, gatetest.Client(), api, "drop", "b9", "us10", ""); a.Status != 410 || a.Str("reason") != "variant_sold_out" {
		t.Fatalf("an order of the sold-out variant: %d %s", a.Status, a.Raw)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sale", "create", "x", "--variant", "us9"}, "want NAME=STOCK"},
		{[]string{"sale", "create", "x", "--variant", "Bad Name=3"}, "is not a variant name"},
		{[]string{"sale", "create", "x", "--variant", "us9=1", "--variant", "us9=2"}, "given twice"},
		{[]string{"sale", "create", "x", "--variant", "us9=-1"}, "want NAME=STOCK"},
	} {
		if out, err := sluice(c.args...); err == nil || !strings.Contains(out, c.want) {
			t.Errorf("sluice %s: %v %s, want an error saying %q", strings.Join(c.args, " "), err, out, c.want)
		}
	}
	// update adds a variant not there yet: a size the shop got in.
	matches("a variant added", must("sale", "update", "drop", "--variant", "us12=5"), `^variant us12 +5 \(5 left, 0 admitted\)$`, `^stock +156 \(153 left`)
	gatetest.Eventually(t, 20*time.Second, "sluice status with the variants", func() bool {
		out = must("status")
		return regexp.MustCompile(`(?m)^drop +open +- +156 +3 +3 +153 +0 `).MatchString(out) && // the drain took them
			strings.Contains(out, "drop: variants, left of stock: us10 0/1 (sold out), us12 5/5, us9 148/150") &&
			strings.Contains(out, "tee: variants, left of stock: l 1/1, m 3/3, s 2/2")
	})
	t.Log(out)
	must("status", "--check")
}
