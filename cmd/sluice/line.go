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
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"sluice/internal/waitingroom/line"
	"sluice/internal/waitingroom/linelog"
	"sluice/loadtest"
)

const lineUsage = `Usage: sluice line verify SALE [--target URL] [--ticket ID]
       sluice line verify SALE --log FILE [--draw FILE]

Checks a waiting room's line from public data alone, as anyone can: it
reads the line's public log (GET /v1/sales/{sale}/line/log: every record
that decides the line, tickets only by the SHA-256 of their ids, no
buyer, no pass) and the draw (GET /v1/sales/{sale}/draw and
/draw/tickets), recomputes the line from the log's records and checks
that none is missing or out of order; that turns were offered in draw
order and a ticket went to the back once, after its turn lapsed; that at
every step the passes outstanding, the claimable turns and the orders
never exceeded the stock; that every order placed with a pass had one
granted to its ticket and unexpired, once; and that no order without a
pass took stock the line held. It prints the first record that breaks a
rule and exits 1; 0 when the line verifies. --ticket ID (your own
ticket's id, which stays on your machine) lists that ticket's records.
--save-log and --save-draw keep what was read, to check it again offline
with --log and --draw (docs/line-audit.md has the format, and a checker
of its own in Python).

Examples:
  sluice line verify drop
  sluice line verify drop --target https://shop.example --ticket z3uaocb5ozbaiv27ll6fnc5bmy
  sluice line verify drop --save-log /tmp/drop-log.json --save-draw /tmp/drop-draw.json
  sluice line verify drop --log /tmp/drop-log.json --draw /tmp/drop-draw.json

Flags:
`

// lineFlags are sluice line verify's.
type lineFlags struct {
	target, logFile, drawFile, saveLog, saveDraw string
	tickets                                      stringList
	timeout                                      time.Duration
	check                                        bool
}

// runLine is sluice line.
func runLine(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fmt.Fprint(stdout, lineUsage)
			return nil
		}
		return usageError("sluice line", errors.New("line: the command is sluice line verify SALE"))
	}
	var f lineFlags
	fs := flag.NewFlagSet("sluice line verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.target, "target", "http://127.0.0.1:8080", "a gate's public API to read the log and the draw from")
	fs.StringVar(&f.logFile, "log", "", "check the log in this `file` (as --save-log writes it, or one page of the API) instead of reading it")
	fs.StringVar(&f.drawFile, "draw", "", "with --log: the draw in this `file` (as --save-draw writes it)")
	fs.StringVar(&f.saveLog, "save-log", "", "write the log read to this `file`")
	fs.StringVar(&f.saveDraw, "save-draw", "", "write the draw read to this `file`")
	fs.Var(&f.tickets, "ticket", "your ticket id, whose records (found by its hash) to list (repeatable)")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Minute, "how long the whole check may take")
	fs.BoolVar(&f.check, "check", false, checkHelp)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), lineUsage)
		fs.PrintDefaults()
	}
	rest := args[1:]
	sale := ""
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		sale, rest = rest[0], rest[1:]
	}
	if err := parseFlags(fs, rest, stdout, stderr); err != nil {
		return err
	}
	if sale == "" && fs.NArg() == 1 {
		sale = fs.Arg(0)
	} else if fs.NArg() > 0 {
		sale = ""
	}
	if sale == "" {
		return usageError("sluice line verify", errors.New("line verify: the sale is required, and nothing else: sluice line verify SALE [flags]"))
	}
	if f.drawFile != "" && f.logFile == "" {
		return usageError("sluice line verify", errors.New("line verify: --draw goes with --log"))
	}
	if u, err := url.Parse(f.target); f.logFile == "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		return &exitError{code: 2, err: fmt.Errorf("line verify: --target %q: want a gate's public API, http(s)://host[:port]", f.target)}
	}
	if f.check {
		from := "at " + f.target
		if f.logFile != "" {
			from = "in " + f.logFile
		}
		return checked(stdout, "line verify of "+sale+" "+from)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	entries, draw, err := f.read(ctx, sale)
	if err != nil {
		return fmt.Errorf("line verify: %s: %w", sale, err)
	}
	sum, err := linelog.Verify(entries, draw)
	var v *linelog.Violation
	if errors.As(err, &v) {
		rec := ""
		if v.Seq >= 1 && v.Seq <= int64(len(entries)) {
			b, _ := json.Marshal(entries[v.Seq-1])
			rec = "\n  " + string(b)
		}
		return fmt.Errorf("line verify: %s: the line does NOT verify: %w%s", sale, v, rec)
	}
	if err != nil {
		return fmt.Errorf("line verify: %s: %w", sale, err)
	}
	printSummary(stdout, sale, sum, draw != nil)
	for _, id := range f.tickets {
		printTicket(stdout, id, entries)
	}
	return nil
}

// read reads the log and the draw, from the files or from the gate, and
// keeps them where asked.
func (f lineFlags) read(ctx context.Context, sale string) ([]linelog.Entry, *linelog.Draw, error) {
	if f.logFile != "" {
		var page logPage
		if err := readJSON(f.logFile, &page); err != nil {
			return nil, nil, err
		}
		if page.Sale != "" && page.Sale != sale {
			return nil, nil, fmt.Errorf("%s is the log of sale %q, not of %s", f.logFile, page.Sale, sale)
		}
		var d *linelog.Draw
		if f.drawFile != "" {
			d = new(linelog.Draw)
			if err := readJSON(f.drawFile, d); err != nil {
				return nil, nil, err
			}
		}
		return page.Records, d, nil
	}
	entries, err := fetchLog(ctx, http.DefaultClient, f.target, sale)
	if err != nil {
		return nil, nil, err
	}
	// The draw list, once the log says the draw is made: a gate that
	// would not give it would have the log checked without it.
	var d *linelog.Draw
	if fd, err := loadtest.FetchDraw(ctx, http.DefaultClient, f.target, sale); err == nil {
		d = &linelog.Draw{Commitment: fd.Commitment, Seed: fd.Seed, Hashes: fd.Hashes}
	} else if slices.ContainsFunc(entries, func(e linelog.Entry) bool { return e.Kind == linelog.KindDraw }) {
		return nil, nil, fmt.Errorf("the log says the draw is made, and the draw list cannot be read: %w", err)
	}
	if f.saveLog != "" {
		if err := writeJSON(f.saveLog, logPage{Sale: sale, From: 1, Total: len(entries), Records: entries}); err != nil {
			return nil, nil, err
		}
	}
	if f.saveDraw != "" && d != nil {
		if err := writeJSON(f.saveDraw, d); err != nil {
			return nil, nil, err
		}
	}
	return entries, d, nil
}

// logPage is a page of GET /v1/sales/{sale}/line/log, and the file
// --save-log writes: the whole log as one page.
type logPage struct {
	Sale    string          `json:"sale"`
	From    int             `json:"from"`
	Total   int             `json:"total"`
	Records []linelog.Entry `json:"records"`
	Next    string          `json:"next,omitempty"`
}

// fetchLog reads a sale's whole log from a gate, page by page (a gate
// answers 503 while it first reads the records: asked again).
func fetchLog(ctx context.Context, c *http.Client, base, sale string) ([]linelog.Entry, error) {
	base = strings.TrimRight(base, "/")
	const limit = 10_000
	var all []linelog.Entry
	for {
		u := base + "/v1/sales/" + url.PathEscape(sale) + "/line/log?from=" + strconv.Itoa(len(all)+1) + "&limit=" + strconv.Itoa(limit)
		var page logPage
		status, retry, err := getPage(ctx, c, u, &page)
		switch {
		case err != nil:
			return nil, err
		case status == http.StatusServiceUnavailable:
			select {
			case <-time.After(retry):
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("the gate still reads the line's log: %w", ctx.Err())
			}
		case status != http.StatusOK:
			return nil, fmt.Errorf("GET %s: %d", u, status)
		case page.From != len(all)+1:
			return nil, fmt.Errorf("GET %s: a page from record %d", u, page.From)
		}
		all = append(all, page.Records...)
		if len(page.Records) < limit {
			return all, nil
		}
	}
}

func getPage(ctx context.Context, c *http.Client, u string, v any) (status int, retry time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, time.Duration(max(1, secs)) * time.Second, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return 0, 0, fmt.Errorf("GET %s: %w", u, err)
	}
	return resp.StatusCode, 0, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func printSummary(w io.Writer, sale string, s linelog.Summary, withDraw bool) {
	fmt.Fprintf(w, "line of %s verifies: %d records, %d tickets\n", sale, s.Records, s.Tickets)
	switch {
	case s.Drawn > 0 && withDraw:
		fmt.Fprintf(w, "  the draw: %d tickets drawn by the seed committed to; the draw list is the log's\n", s.Drawn)
	case s.Drawn > 0:
		fmt.Fprintf(w, "  the draw: %d tickets drawn by the seed committed to (no draw list read)\n", s.Drawn)
	default:
		fmt.Fprintf(w, "  the draw: not made yet\n")
	}
	fmt.Fprintf(w, "  turns in draw order: %d offered, %d claimed, %d passes granted, %d lapsed, %d back at the end of the line, %d passes expired\n",
		s.Offers, s.Claims, s.Grants, s.Lapses, s.Rejoins, s.Expiries)
	if s.LeastRoom >= 0 {
		fmt.Fprintf(w, "  at every one of %d steps: passes outstanding + claimable turns + orders <= the stock (least room left %d, record %d)\n",
			s.Steps, s.LeastRoom, s.LeastRoomAt)
	} else {
		fmt.Fprintf(w, "  %d steps, none with the stock read (a line begun before the log)\n", s.Steps)
	}
	fmt.Fprintf(w, "  %d orders: %d with a pass granted to their ticket and unexpired, %d without a pass beyond what the line held; %d given back\n",
		s.Orders, s.PassOrders, s.Passless-s.Unchecked, s.Released)
	if s.Unread > 0 {
		fmt.Fprintf(w, "  %d records of the streams the line could not read, which change nothing (a ticket whose join is one is not in the line: --ticket finds yours)\n", s.Unread)
	}
	if s.Unchecked > 0 {
		fmt.Fprintf(w, "  %d orders without a pass placed before the log knew the stock: not checked\n", s.Unchecked)
	}
}

// printTicket lists a ticket's records, found by its hash.
func printTicket(w io.Writer, id string, entries []linelog.Entry) {
	h := line.TicketHash(id)
	fmt.Fprintf(w, "  ticket %s (hash %s):\n", id, h)
	n := 0
	for _, e := range entries {
		if e.Ticket != h {
			continue
		}
		n++
		what := string(e.Kind)
		if e.Position > 0 {
			what += " at position " + strconv.FormatInt(e.Position, 10)
		}
		switch {
		case !e.ClaimBy.IsZero():
			what += ", to claim by " + e.ClaimBy.Format(time.RFC3339)
		case !e.Expires.IsZero():
			what += ", the pass until " + e.Expires.Format(time.RFC3339)
		case e.Kind == linelog.KindOrder:
			what += " " + strconv.FormatUint(e.OrderSeq, 10) + " of the sale's ledger, with its pass"
		}
		fmt.Fprintf(w, "    record %d, %s: %s\n", e.Seq, e.At.Format(time.RFC3339Nano), what)
	}
	if n == 0 {
		fmt.Fprintf(w, "    not in the log (a ticket of another sale, or not placed yet)\n")
	}
}
