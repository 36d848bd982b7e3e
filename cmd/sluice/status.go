package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"sluice/internal/serve"
)

const statusUsage = `Usage: sluice status [flags]

Shows every sale of a running gate at a glance, one line per sale, read
from the gate's ops listener (GET /status, the data of the console at /).
--watch redraws it until interrupted.

Columns: STATE and WINDOW (a countdown before the start), STOCK, ADMITTED,
CONFIRMED, LEFT, QUEUE (depth/bound), DRAIN (rate and whether it keeps
up: ok or behind; idle with nothing queued; none without a drain), WAIT (the estimated wait of the last order queued), ANSWERS/S (this
gate's answers per second over the last 10 s, the two commonest reasons).
A sale with a waiting room has a line under the table: tickets in line of
line_limit, how many were drawn, the position let in through, the passes
out. A sale with variants has one too: each variant's left of its stock.

Examples:
  sluice status
  sluice status --watch --interval 1s
  sluice status --ops http://10.0.0.2:9464 --json

Flags:
`

// runStatus is sluice status.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sluice status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ops := fs.String("ops", "http://127.0.0.1:9464", "the gate's ops listener (its --ops-listen; else SLUICE_OPS, else the gate's SLUICE_OPS_LISTEN)")
	watch := fs.Bool("watch", false, "redraw until interrupted")
	interval := fs.Duration("interval", 2*time.Second, "how often --watch redraws")
	asJSON := fs.Bool("json", false, "print the gate's JSON (GET /status) instead of the table")
	check := fs.Bool("check", false, checkHelp)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), statusUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if _, err := layerWith(fs, "", map[string]any{}, nil, layerOptions{only: map[string]bool{"check": true}}); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("sluice status", fmt.Errorf("status: unexpected argument %q", fs.Arg(0)))
	}
	if *interval < 100*time.Millisecond {
		return &exitError{code: 2, err: errors.New("status: --interval must be at least 100ms")}
	}
	base := opsBase(fs, *ops)
	if u, err := url.Parse(base); err != nil || u.Host == "" {
		return &exitError{code: 2, err: fmt.Errorf("status: --ops %q: want the gate's ops listener, host:port or http://host:port", *ops)}
	}
	if *check {
		return checked(stdout, "status of "+base)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	show := func() error {
		raw, st, err := fetchStatus(ctx, client, base+"/status")
		if err != nil {
			return err
		}
		if *asJSON {
			_, err := stdout.Write(raw)
			return err
		}
		writeStatus(stdout, st, base)
		return nil
	}
	if !*watch {
		return show()
	}
	t := time.NewTicker(*interval)
	defer t.Stop()
	for {
		if !*asJSON {
			fmt.Fprint(stdout, "\033[H\033[2J") // home, clear
		}
		if err := show(); err != nil {
			fmt.Fprintf(stdout, "%s  %v (retrying every %s)\n", time.Now().Format("15:04:05"), err, *interval)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func fetchStatus(ctx context.Context, c *http.Client, url string) ([]byte, serve.Status, error) {
	var st serve.Status
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, st, fmt.Errorf("status: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, st, fmt.Errorf("status: is a gate running? %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, st, fmt.Errorf("status: %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, st, fmt.Errorf("status: %s answered %s (is it a sluice ops listener?)", url, resp.Status)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, st, fmt.Errorf("status: %s: not sluice's status: %w", url, err)
	}
	return raw, st, nil
}

// writeStatus prints the header lines and one line per sale, as
// `nats stream report` does.
func writeStatus(w io.Writer, st serve.Status, base string) {
	p, j := st.Process, st.JetStream
	ready := "ready"
	if !st.Ready {
		ready = "NOT READY"
	}
	if st.LedgerRefusing {
		ready += ", JetStream refusing writes (orders answered 503)"
	}
	if st.Waiters > 0 {
		ready += fmt.Sprintf(", %d of %d requests held for a decision (Prefer: wait)", st.Waiters, st.MaxWaiters)
	}
	fmt.Fprintf(w, "sluice %s (%s) %s at %s: %s, up %s, %d goroutines, heap %s, GC %d\n",
		p.Command, p.Role, p.Version, base, ready, shortDur(p.UptimeSeconds), p.Goroutines, bytesText(p.HeapBytes), p.GCCycles)
	js := "connected"
	if !j.Connected {
		js = "DISCONNECTED"
	}
	where := "external"
	if j.Embedded {
		where = "embedded"
	}
	fmt.Fprintf(w, "JetStream %s (%s): %d streams, %d consumers, store %s", js, where, j.Streams, j.Consumers, bytesText(j.StoreB))
	if j.MaxStoreB > 0 {
		fmt.Fprintf(w, " of %s", bytesText(uint64(j.MaxStoreB)))
	}
	if j.Cluster != nil {
		fmt.Fprintf(w, "; cluster %s leader %s", j.Cluster.Cluster, j.Cluster.Leader)
		for _, peer := range j.Cluster.Peers {
			fmt.Fprintf(w, ", %s %s", peer.Name, peerText(peer.Current, peer.Offline, peer.Lag))
		}
	}
	if j.Error != "" {
		fmt.Fprintf(w, " (%s)", j.Error)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)
	if len(st.Sales) == 0 {
		if st.Drain != nil {
			fmt.Fprintf(w, "This process runs a drain only (backend %s); ask a gate for its sales.\n", st.Drain.Backend)
		} else {
			fmt.Fprintln(w, "No sales.")
		}
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SALE\tSTATE\tWINDOW\tSTOCK\tADMITTED\tCONFIRMED\tLEFT\tQUEUE\tDRAIN\tWAIT\tANSWERS/S")
	for _, s := range st.Sales {
		confirmed := "-"
		if s.Confirmed != nil {
			confirmed = fmt.Sprint(*s.Confirmed)
		}
		queue := fmt.Sprint(s.QueueDepth)
		if s.QueueBound > 0 {
			queue += "/" + fmt.Sprint(s.QueueBound)
		}
		drain := "none"
		if s.DrainAttached {
			rate := "?/s"
			if r, ok := s.DrainRate.Value(); ok {
				rate = fmt.Sprintf("%.1f/s", r)
			}
			drain = rate + " behind"
			switch {
			case s.QueueDepth == 0 && rate == "?/s":
				drain = "idle"
			case s.KeepingUp:
				drain = rate + " ok"
			}
		}
		wait := "unknown"
		if v, ok := s.Wait.Value(); ok {
			wait = shortDur(v)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%d\t%s\t%s\t%s\t%s\n", s.Sale, s.State, windowText(s, st.Time),
			s.Stock, s.Admitted, confirmed, s.Remaining, queue, drain, wait, answersText(s, 10))
	}
	tw.Flush()
	for _, s := range st.Sales {
		writeVariants(w, s)
		r := s.WaitingRoom
		if r == nil {
			continue
		}
		draw := "drawn at the start"
		if r.Sealed {
			draw = fmt.Sprintf("%d drawn", r.Drawn)
		}
		lapsed := ""
		if r.Lapsed > 0 {
			lapsed = fmt.Sprintf(", %d turns lapsed (%d back in line)", r.Lapsed, r.Rejoined)
		}
		fmt.Fprintf(w, "%s: waiting room, %d of %d in line (%s), let in through %d, %s out%s (pass_ttl %s)\n",
			s.Sale, r.Tickets, r.LineLimit, draw, r.LetIn, plural(r.Outstanding, "pass", "passes"), lapsed, shortDur(r.PassTTL))
	}
}

// writeVariants writes a sale with variants' line: each variant's items
// left of its stock, "us9 0/120 (sold out), us10 37/200".
func writeVariants(w io.Writer, s serve.SaleStatus) {
	if len(s.Variants) == 0 {
		return
	}
	var parts []string
	for _, v := range s.Config.VariantNames() {
		vs := s.Variants[v]
		part := fmt.Sprintf("%s %d/%d", v, vs.Remaining, vs.Stock)
		if vs.Remaining == 0 {
			part += " (sold out)"
		}
		parts = append(parts, part)
	}
	fmt.Fprintf(w, "%s: variants, left of stock: %s\n", s.Sale, strings.Join(parts, ", "))
}

// windowText is when the sale opens or closes, from the gate's clock.
func windowText(s serve.SaleStatus, now time.Time) string {
	switch {
	case !s.StartsAt.IsZero() && now.Before(s.StartsAt):
		return "opens in " + shortDur(s.StartsAt.Sub(now).Seconds())
	case !s.EndsAt.IsZero() && now.Before(s.EndsAt):
		return "ends in " + shortDur(s.EndsAt.Sub(now).Seconds())
	case !s.EndsAt.IsZero():
		return "ended " + shortDur(now.Sub(s.EndsAt).Seconds()) + " ago"
	}
	return "-"
}

// answersText is the total answers per second over the last n samples and
// the two commonest reasons.
func answersText(s serve.SaleStatus, n int) string {
	type rr struct {
		reason string
		rate   float64
	}
	var rates []rr
	var total float64
	for reason, series := range s.AnswersPerSecond {
		from := max(0, len(series)-n)
		var sum float64
		for _, v := range series[from:] {
			sum += v
		}
		if k := len(series) - from; k > 0 && sum > 0 {
			rates = append(rates, rr{reason, sum / float64(k)})
			total += sum / float64(k)
		}
	}
	if total == 0 {
		return "0"
	}
	slices.SortFunc(rates, func(a, b rr) int {
		switch {
		case a.rate > b.rate:
			return -1
		case a.rate < b.rate:
			return 1
		}
		return strings.Compare(a.reason, b.reason)
	})
	out := fmt.Sprintf("%.0f (", total)
	for i, r := range rates[:min(2, len(rates))] {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%s %.0f", r.reason, r.rate)
	}
	return out + ")"
}

func peerText(current, offline bool, lag uint64) string {
	switch {
	case offline:
		return "offline"
	case current:
		return "current"
	}
	return fmt.Sprintf("behind %d", lag)
}

func shortDur(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

func bytesText(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}

// plural is "1 pass", "0 passes", "2 passes".
func plural[N int | int64 | uint64](n N, one, many string) string {
	if n == 1 {
		return fmt.Sprint(n, " ", one)
	}
	return fmt.Sprint(n, " ", many)
}
