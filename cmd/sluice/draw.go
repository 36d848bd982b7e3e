package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"sluice/internal/waitingroom/line"
	"sluice/loadtest"
)

const drawUsage = `Usage: sluice draw verify --gate URL --sale NAME [--ticket ID]

Checks a waiting room's draw from public data alone, as anyone can:
it reads the commitment and the revealed seed (GET /v1/sales/{sale}/draw)
and every drawn ticket's hash in position order (GET
/v1/sales/{sale}/draw/tickets: SHA-256 of each ticket id, never the id,
which is its holder's secret), then checks that SHA-256(seed) is the
commitment published before the start and that the hashes are in the
order HMAC-SHA256(seed, hash) puts them. --ticket ID (your own ticket's
id, which stays on your machine) also checks that its hash is in the
draw and prints its position. Exit 0 when the draw verifies, 1 when it
does not.

Examples:
  sluice draw verify --sale drop
  sluice draw verify --gate https://shop.example --sale drop --ticket z3uaocb5ozbaiv27ll6fnc5bmy

Flags:
`

// runDraw is sluice draw.
func runDraw(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fmt.Fprint(stdout, drawUsage)
			return nil
		}
		return usageError("sluice draw", errors.New("draw: the command is sluice draw verify"))
	}
	fs := flag.NewFlagSet("sluice draw verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	gate := fs.String("gate", "http://127.0.0.1:8080", "a gate's public API")
	sale := fs.String("sale", "", "the sale whose draw to check")
	var tickets stringList
	fs.Var(&tickets, "ticket", "your ticket id, to find (by its hash) in the draw (repeatable)")
	timeout := fs.Duration("timeout", time.Minute, "how long the whole check may take")
	check := fs.Bool("check", false, checkHelp)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), drawUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args[1:], stdout, stderr); err != nil {
		return err
	}
	if *sale == "" || fs.NArg() > 0 {
		return usageError("sluice draw verify", errors.New("draw verify: --sale is required, and nothing else"))
	}
	if u, err := url.Parse(*gate); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &exitError{code: 2, err: fmt.Errorf("draw verify: --gate %q: want a gate's public API, http(s)://host[:port]", *gate)}
	}
	if *check {
		return checked(stdout, "draw verify of "+*sale+" at "+*gate)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	d, err := loadtest.FetchDraw(ctx, http.DefaultClient, *gate, *sale)
	if err != nil {
		return fmt.Errorf("draw verify: %w", err)
	}
	if err := d.Verify(); err != nil {
		return fmt.Errorf("draw verify: %s: the draw does NOT verify: %w", *sale, err)
	}
	fmt.Fprintf(stdout, "draw of %s verifies: %d tickets drawn\n  commitment %s = SHA-256(seed)\n  seed       %s\n",
		*sale, len(d.Hashes), d.Commitment, d.Seed)
	for _, id := range tickets {
		pos := d.Position(id)
		if pos == 0 {
			return fmt.Errorf("draw verify: ticket %s (hash %s) is not in the draw of %s", id, line.TicketHash(id), *sale)
		}
		fmt.Fprintf(stdout, "  ticket %s (hash %s) holds position %d of %d\n", id, line.TicketHash(id)[:12]+"…", pos, len(d.Hashes))
	}
	return nil
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
