package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
	"sluice/internal/testkit/testenv"
	"sluice/loadtest"
)

func TestLoadtestCommand(t *testing.T) {
	srv := gatetest.Start(t, gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 50}))
	html := filepath.Join(t.TempDir(), "report.html")
	var out bytes.Buffer
	err := run(context.Background(), []string{"loadtest", "--target", "http://" + srv.APIAddr(), "--sale", "s1",
		"--profile", "constant", "--rate", "400", "--duration", "1s", "--buyers", "300", "--json", "--html", html, "--quiet"},
		&out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var rep loadtest.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("--json: %v", err)
	}
	if rep.Requests != 400 || rep.Verification == nil || !rep.Verification.Passed || rep.Verification.Confirmed != 50 {
		t.Fatalf("report: %d requests, verification %+v", rep.Requests, rep.Verification)
	}
	page, err := os.ReadFile(html)
	if err != nil || !strings.Contains(string(page), "<canvas") {
		t.Fatalf("--html: %v", err)
	}
}

func TestLoadtestRefusesARemoteTarget(t *testing.T) {
	err := run(context.Background(), []string{"loadtest", "--target", "http://8.8.8.8:80", "--quiet"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "allow-remote") {
		t.Fatalf("remote target: %v", err)
	}
}

// --threshold fails a run that misses it with k6's exit status 99, after
// printing the report; --compare shows the change from a --json report;
// a bad threshold or compare file fails before anything is sent.
func TestLoadtestThresholdsAndCompare(t *testing.T) {
	srv := gatetest.Start(t, gatetest.Config(t, ledger.Sale{Name: "t1", Stock: 20}, ledger.Sale{Name: "t2", Stock: 20}))
	prev := filepath.Join(t.TempDir(), "prev.json")
	args := func(sale string, extra ...string) []string {
		return append([]string{"loadtest", "--target", "http://" + srv.APIAddr(), "--sale", sale, "--profile", "constant",
			"--rate", "200", "--duration", "500ms", "--buyers", "100", "--quiet"}, extra...)
	}
	var out bytes.Buffer
	err := run(context.Background(), args("t1", "--json", "--threshold", "dropped==0", "--threshold", "confirmed==20"), &out, io.Discard)
	if err != nil {
		t.Fatalf("thresholds that hold: %v", err)
	}
	if err := os.WriteFile(prev, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = run(context.Background(), args("t2", "--threshold", "p99<1us", "--threshold", "confirmed==20", "--compare", prev), &out, io.Discard)
	if code := exitCode(err); code != 99 {
		t.Fatalf("a missed threshold: exit %d (%v)", code, err)
	}
	text := out.String()
	for _, want := range []string{"Thresholds    FAILED", "✗ p99<1us", "✓ confirmed==20", "Compared with " + prev, "achieved_rate"} {
		if !strings.Contains(text, want) {
			t.Fatalf("report lacks %q:\n%s", want, text)
		}
	}
	for _, bad := range [][]string{{"--threshold", "p99<<1ms"}, {"--compare", filepath.Join(t.TempDir(), "none.json")}} {
		if err := run(context.Background(), args("t2", bad...), io.Discard, io.Discard); err == nil {
			t.Fatalf("%v accepted", bad)
		}
	}
}

// A waiting-room rehearsal in three shards, each a `sluice loadtest
// --waiting-room --shard i/3 --json` process, merged by `sluice loadtest
// merge`, which runs the outcome check on their union; a merge missing a
// shard, and a shard without --json, are refused.
func TestLoadtestShardsAndMergeThroughTheBinary(t *testing.T) {
	testenv.Exclusive(t) // three generators and a gate: both cores
	bin := binary(t)
	start := time.Now().Add(10 * time.Second)
	// poll_rate 10: the line opens over 30 s, its first 30 positions'
	// first looks spread over 3 s, so the sale sells out seconds after the
	// start, not before the late buyers (who join in the second after it)
	// are in the line: at the default rate the front looked at once and
	// bought all 30 within that second, and late joins were told sold_out.
	srv := gatetest.Start(t, gatetest.Config(t, ledger.Sale{Name: "room", Stock: 30, StartsAt: start, WaitingRoom: true,
		BackendRate: 60, PassTTL: ledger.Duration(10 * time.Second), LineLimit: 5000, PollRate: 10}))
	target := "http://" + srv.APIAddr()
	dir := t.TempDir()
	rehearse := func(shard string, extra ...string) *exec.Cmd {
		args := append([]string{"loadtest", "--waiting-room", "--target", target, "--sale", "room", "--buyers", "300",
			"--late-buyers", "15", "--before", "6s", "--connections", "16", "--shard", shard, "--quiet"}, extra...)
		return exec.Command(bin, args...)
	}
	if out, err := rehearse("1/3").CombinedOutput(); err == nil || !strings.Contains(string(out), "add --json") {
		t.Fatalf("--shard without --json: %v %s", err, out)
	}
	if out, err := rehearse("4/3", "--json").CombinedOutput(); err == nil || !strings.Contains(string(out), "1 ≤ i ≤ n") {
		t.Fatalf("--shard 4/3: %v %s", err, out)
	}
	var wg sync.WaitGroup
	files := make([]string, 3)
	for i := range files {
		files[i] = filepath.Join(dir, fmt.Sprintf("shard%d.json", i+1))
		wg.Go(func() {
			extra := []string{"--json"}
			if i == 0 {
				extra = append(extra, "--cpu-profile", filepath.Join(dir, "cpu.pprof"), "--heap-profile", filepath.Join(dir, "heap.pprof"))
			}
			cmd := rehearse(fmt.Sprintf("%d/3", i+1), extra...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Errorf("shard %d/3: %v\n%s", i+1, err, stderr.String())
			}
			if err := os.WriteFile(files[i], stdout.Bytes(), 0o600); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, name := range []string{"cpu.pprof", "heap.pprof"} { // gzip'd protocol buffers
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || len(b) < 100 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("--%s-profile: %v, %d bytes", strings.TrimSuffix(name, ".pprof"), err, len(b))
		}
	}
	out, err := exec.Command(bin, "loadtest", "merge", "--html", filepath.Join(dir, "room.html"), files[0], files[1], files[2]).Output()
	if err != nil {
		t.Fatalf("merge: %v\n%s", err, out)
	}
	text := string(out)
	t.Log(text)
	for _, want := range []string{"300 joined before the start (drawn), 15 after", "served 30 with their pass; 30 confirmed",
		"ok   passes", "ok   draw order among those who stayed", "shard 3/3:", "outcome check: passed"} {
		if !strings.Contains(text, want) {
			t.Errorf("the merged report lacks %q", want)
		}
	}
	if page, err := os.ReadFile(filepath.Join(dir, "room.html")); err != nil || !strings.Contains(string(page), `<table id="lapses">`) {
		t.Errorf("--html: %v", err)
	}
	cmd := exec.Command(bin, "loadtest", "merge", files[0], files[2])
	if out, err := cmd.CombinedOutput(); exitCodeOf(err) != 2 || !strings.Contains(string(out), "shard 2/3 is missing") {
		t.Errorf("two shards of three: exit %d %s", exitCodeOf(err), out)
	}
}

// `sluice loadtest polls` polls tickets of a line at full speed and
// says how many a CPU-second.
func TestLoadtestPollsThroughTheBinary(t *testing.T) {
	srv := gatetest.Start(t, gatetest.Config(t, ledger.Sale{Name: "room", Stock: 10, StartsAt: time.Now().Add(time.Hour),
		WaitingRoom: true, LineLimit: 100, LineOpens: ledger.Duration(2 * time.Hour)}))
	c := gatetest.Client()
	var tickets []string
	for i := range 20 {
		req, _ := http.NewRequest("POST", "http://"+srv.APIAddr()+"/v1/sales/room/line", strings.NewReader(fmt.Sprintf(`{"buyer_id":"b%d"}`, i)))
		req.Header.Set("Content-Type", "application/json")
		a := gatetest.Do(t, c, req)
		if a.Status != http.StatusCreated {
			t.Fatalf("join: %d %v", a.Status, a.Body)
		}
		tickets = append(tickets, a.Str("ticket_id"))
	}
	file := filepath.Join(t.TempDir(), "tickets")
	if err := os.WriteFile(file, []byte(strings.Join(tickets, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary(t), "loadtest", "polls", "--target", "http://"+srv.APIAddr(), "--tickets", file,
		"--duration", "1s", "--connections", "4", "--json").Output()
	if err != nil {
		t.Fatalf("%v %s", err, out)
	}
	var rep loadtest.PollBenchReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Tickets != 20 || rep.Polls < 20 || len(rep.Errors) != 0 || rep.PollsPerCPUSecond <= 0 || rep.Latency.Count != rep.Polls {
		t.Fatalf("%+v", rep)
	}
	if err := exec.Command(binary(t), "loadtest", "polls", "--duration", "1s").Run(); exitCodeOf(err) != 2 {
		t.Fatalf("no --tickets: %v", err)
	}
}

// The subcommands' help goes to stdout, with examples.
func TestLoadtestSubcommandsHelp(t *testing.T) {
	for _, sub := range []string{"merge", "polls"} {
		var out, errb bytes.Buffer
		if err := run(context.Background(), []string{"loadtest", sub, "--help"}, &out, &errb); exitCode(err) != 0 || errb.Len() != 0 {
			t.Errorf("%s --help: %v %s", sub, err, errb.String())
		}
		if o := out.String(); strings.Count(o, "Usage: sluice loadtest "+sub) != 1 || !strings.Contains(o, "\nExamples:\n") {
			t.Errorf("%s --help:\n%s", sub, o)
		}
	}
}

func exitCodeOf(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// sluice loadtest --variants on a sale with variants, through the built
// binary: buyers choose by weight, those told variant_sold_out order
// another of those left, and the outcome check counts each variant's
// stock exact and one order per buyer across them. The rehearsal of a
// waiting room does the same with one pass a buyer.
func TestLoadtestVariantsThroughTheBinary(t *testing.T) {
	bin := binary(t)
	t.Run("spike", func(t *testing.T) {
		srv := gatetest.Start(t, gatetest.Config(t, ledger.Sale{Name: "sneaker", Variants: map[string]int64{"us9": 12, "us10": 30, "us11": 6}}))
		out, err := exec.Command(bin, "loadtest", "--target", "http://"+srv.APIAddr(), "--sale", "sneaker", "--variants", "us9=3,us10=5,us11=2",
			"--profile", "constant", "--rate", "300", "--duration", "1s", "--buyers", "200", "--greedy", "0.1", "--json", "--quiet").Output()
		if err != nil {
			t.Fatalf("loadtest --variants: %v\n%s", err, out)
		}
		var rep loadtest.Report
		if err := json.Unmarshal(out, &rep); err != nil {
			t.Fatal(err)
		}
		v := rep.Verification
		if v == nil || !v.Passed || v.Confirmed != 48 {
			t.Fatalf("verification %+v", v)
		}
		for name, stock := range map[string]int64{"us9": 12, "us10": 30, "us11": 6} {
			if o := v.Variants[name]; o.Stock != stock || o.Confirmed != stock || o.Admitted != stock || o.Remaining != 0 {
				t.Errorf("variant %s: %+v, want all %d of its stock confirmed", name, o, stock)
			}
		}
		// The smallest variant sells out first: its buyers were told so,
		// and some ordered another at once.
		if rep.Reasons["variant_sold_out"] == 0 || rep.Reasons["already_ordered"] == 0 {
			t.Errorf("reasons %v: want variant_sold_out and already_ordered among them", rep.Reasons)
		}
		text, err := exec.Command(bin, "loadtest", "--target", "http://"+srv.APIAddr(), "--sale", "sneaker", "--variants", "us9,us10,us11",
			"--profile", "constant", "--rate", "50", "--duration", "200ms", "--quiet").Output()
		// A second run finds the sale sold out: none of its orders is
		// confirmed, and each variant still holds its stock.
		if err != nil || !strings.Contains(string(text), "variants, confirmed of stock  us10 0/30, us11 0/6, us9 0/12") || !strings.Contains(string(text), "Outcome check PASSED") {
			t.Errorf("the text report of a second run on the sold-out sale: %v\n%s", err, text)
		}
		for _, bad := range []string{"us9=0", "us9,us9", "=3", ""} {
			if out, err := exec.Command(bin, "loadtest", "--target", "http://"+srv.APIAddr(), "--sale", "sneaker", "--variants", bad, "--quiet").CombinedOutput(); exitCodeOf(err) != 2 {
				t.Errorf("--variants %q: exit %d %s", bad, exitCodeOf(err), out)
			}
		}
	})
	t.Run("waiting room", func(t *testing.T) {
		start := time.Now().Add(8 * time.Second)
		srv := gatetest.Start(t, gatetest.Config(t, ledger.Sale{Name: "drop", Variants: map[string]int64{"us9": 5, "us10": 15}, StartsAt: start,
			WaitingRoom: true, BackendRate: 60, PassTTL: ledger.Duration(10 * time.Second), LineLimit: 5000}))
		cmd := exec.Command(bin, "loadtest", "--waiting-room", "--target", "http://"+srv.APIAddr(), "--sale", "drop", "--variants", "us9=4,us10=1",
			"--buyers", "120", "--before", "5s", "--connections", "16", "--quiet")
		out, err := cmd.CombinedOutput()
		text := string(out)
		if err != nil {
			t.Fatalf("rehearsal with variants: %v\n%s", err, text)
		}
		// us9 has a third of the stock and four in five buyers want it:
		// most of those let in late switch to us10 with the same pass.
		for _, want := range []string{"served 20 with their pass; 20 confirmed", "by variant, confirmed of stock: us10 15/15, us9 5/5", "ok   passes", "outcome check: passed"} {
			if !strings.Contains(text, want) {
				t.Errorf("the rehearsal's report lacks %q:\n%s", want, text)
			}
		}
	})
}
