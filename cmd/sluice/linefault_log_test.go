package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sluice/internal/waitingroom/linelog"
)

// The line's public log under faults: after every fault `sluice line
// verify` (the built binary) checks a live gate's log, which must
// verify, come to say what the recomputation from the durable records
// says (tickets, orders, returns to the back, claims, let in, passes),
// and be, record for record, what every other live gate serves (one the
// start of the other's). At the end doctored copies of it are refused.

// logFigures is what a log says of the line.
type logFigures struct {
	tickets, orders, rejoins, claimed, letIn, passes int64
}

func figuresOf(entries []linelog.Entry) logFigures {
	var f logFigures
	for _, e := range entries {
		switch e.Kind {
		case linelog.KindJoin:
			f.tickets++
		case linelog.KindOrder:
			f.orders++
		case linelog.KindRejoin:
			f.rejoins++
		case linelog.KindClaim:
			if e.Counted != nil && *e.Counted {
				f.claimed++
			}
		case linelog.KindGrant:
			f.passes++
		case linelog.KindStep:
			f.letIn = e.State.LetIn
		}
	}
	return f
}

// auditFigures is what the recomputation from the records says.
func auditFigures(a lineAudit) logFigures {
	f := logFigures{tickets: a.st.Tickets, orders: a.admitted, rejoins: a.rejoinRecords, claimed: a.st.Claimed, letIn: a.st.LetIn}
	for _, tk := range a.tickets {
		if tk.HasPass() {
			f.passes++
		}
	}
	return f
}

// checkLog runs sluice line verify on a live gate's log until it says
// what the records say (a record enters the log once the pace covers
// it, within a second or two), and compares it with every live gate's.
// It returns the path of the log saved.
func (fc *faultCluster) checkLog(t *testing.T, when string) string {
	t.Helper()
	dir := t.TempDir()
	saved := filepath.Join(dir, "log.json")
	deadline := time.Now().Add(30 * time.Second)
	for {
		live := fc.live()
		if len(live) == 0 {
			t.Fatalf("%s: no gate up to read the log from", when)
		}
		g := live[0]
		code, out, errOut := runBinary(t, dir, nil, "line", "verify", "drop", "--target", "http://"+g.api,
			"--save-log", saved, "--timeout", "60s")
		if code != 0 {
			if fc.up(g.n) && strings.Contains(errOut, "does NOT verify") {
				t.Fatalf("%s: the log of gate %d does not verify:\n%s%s", when, g.n, out, errOut)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: sluice line verify at gate %d: exit %d\n%s%s", when, g.n, code, out, errOut)
			}
			time.Sleep(500 * time.Millisecond)
			continue
		}
		var page logPage
		if err := readJSON(saved, &page); err != nil {
			t.Fatal(err)
		}
		mismatch := fc.logsDiffer(page.Records)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		a, err := fc.audit(ctx, time.Now())
		cancel()
		got, want := figuresOf(page.Records), auditFigures(a)
		switch {
		case err != nil:
			mismatch = err.Error()
		case mismatch == "" && got != want:
			mismatch = fmt.Sprintf("the log of gate %d says %+v; the records %+v", g.n, got, want)
		}
		if mismatch == "" {
			fc.lastVerify = out
			return saved
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s\n%s", when, mismatch, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// logsDiffer compares every live gate's log with these records: one is
// the start of the other, record for record; "" when all agree.
func (fc *faultCluster) logsDiffer(records []linelog.Entry) string {
	for _, g := range fc.live() {
		raw, ok := rawLog(fc, "http://"+g.api)
		if !ok {
			continue // going down, or reading its log
		}
		for i := range min(len(raw), len(records)) {
			mine, _ := json.Marshal(records[i])
			if string(mine) != string(raw[i]) {
				return fmt.Sprintf("gate %d's record %d is %s; another gate's %s", g.n, i+1, raw[i], mine)
			}
		}
	}
	return ""
}

// rawLog reads a gate's whole log as it writes each record.
func rawLog(fc *faultCluster, base string) ([]json.RawMessage, bool) {
	var out []json.RawMessage
	for {
		resp, err := fc.c.Get(fmt.Sprintf("%s/v1/sales/drop/line/log?from=%d&limit=10000", base, len(out)+1))
		if err != nil {
			return nil, false
		}
		var page struct {
			Records []json.RawMessage `json:"records"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil {
			return nil, false
		}
		out = append(out, page.Records...)
		if len(page.Records) < 10000 {
			return out, true
		}
	}
}

// refuseDoctored runs sluice line verify --log on doctored copies of a
// log that verifies: each must be refused (exit 1), at a record.
func refuseDoctored(t *testing.T, saved string) {
	t.Helper()
	var page logPage
	if err := readJSON(saved, &page); err != nil {
		t.Fatal(err)
	}
	find := func(l []linelog.Entry, k linelog.Kind) int {
		for i, e := range l {
			if e.Kind == k && (k != linelog.KindOffer || (i+1 < len(l) && l[i+1].Kind == k)) {
				return i
			}
		}
		return -1
	}
	renumber := func(l []linelog.Entry) []linelog.Entry {
		for i := range l {
			l[i].Seq = int64(i + 1)
		}
		return l
	}
	dir := t.TempDir()
	for _, c := range []struct {
		name   string
		doctor func([]linelog.Entry) []linelog.Entry
	}{
		{"a record removed", func(l []linelog.Entry) []linelog.Entry { return slices.Delete(l, len(l)/2, len(l)/2+1) }},
		{"an order removed, the rest renumbered", func(l []linelog.Entry) []linelog.Entry {
			i := find(l, linelog.KindOrder)
			return renumber(slices.Delete(l, i, i+1))
		}},
		{"two offers swapped", func(l []linelog.Entry) []linelog.Entry {
			i := find(l, linelog.KindOffer)
			l[i].Ticket, l[i+1].Ticket = l[i+1].Ticket, l[i].Ticket
			return l
		}},
		{"an extra pass", func(l []linelog.Entry) []linelog.Entry {
			i := find(l, linelog.KindGrant)
			extra := l[i]
			extra.Position = l[find(l, linelog.KindOffer)].Position
			extra.Ticket = l[find(l, linelog.KindOffer)].Ticket
			return renumber(slices.Insert(l, i+1, extra))
		}},
	} {
		l := c.doctor(slices.Clone(page.Records))
		path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".json")
		b, _ := json.Marshal(logPage{Sale: "drop", From: 1, Total: len(l), Records: l})
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runBinary(t, dir, nil, "line", "verify", "drop", "--log", path)
		if code != 1 || !strings.Contains(errOut, "does NOT verify") || !strings.Contains(errOut, "breaks the rule") {
			t.Errorf("%s: sluice line verify exit %d, want 1 and the record that breaks it:\n%s%s", c.name, code, out, errOut)
			continue
		}
		t.Logf("%s: refused: %s", c.name, strings.SplitN(strings.TrimSpace(errOut), "\n", 2)[0])
	}
}
