package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"sluice/overflow"
)

const pagesUsage = `Usage: sluice pages export DIR

Writes the built-in HTML pages into DIR (made if needed), the starting
point of your own: each is a Go html/template whose comment lists its
fields.

  waiting.html   the waiting room's page for a ticket; {{script .}} keeps
                 its behaviour (polling, the buy button) in a page of yours
  join.html      the form that joins a sale's line
  problem.html   every other answer a browser gets (sold out, busy, …)

Add <reason>.html for one answer's own page (sold-out.html,
not-started.html, closed.html, …: the reason with dashes). Then run the
gate with --pages DIR: a page not there is the built-in one, and a page
that does not parse is refused at start with its line.

Examples:
  sluice pages export ./pages
  sluice serve --pages ./pages
`

func runPages(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "export" {
		args = args[1:]
	} else if len(args) == 0 || !isHelp(args[0]) {
		return usageError("sluice pages", errors.New("pages: want: export DIR"))
	}
	fset := flag.NewFlagSet("sluice pages export", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() { fmt.Fprint(fset.Output(), pagesUsage+"\nFlags:\n"); fset.PrintDefaults() }
	check := fset.Bool("check", false, checkHelp)
	if err := parseFlags(fset, args, stdout, stderr); err != nil {
		return err
	}
	if fset.NArg() > 1 { // flags after DIR
		dir := fset.Arg(0)
		if err := parseFlags(fset, fset.Args()[1:], stdout, stderr); err != nil {
			return err
		}
		if fset.NArg() > 0 {
			return &exitError{code: 2, err: fmt.Errorf("pages export: unexpected arguments %q", fset.Args())}
		}
		_ = fset.Parse([]string{dir})
	}
	if fset.NArg() != 1 || fset.Arg(0) == "" {
		return usageError("sluice pages", errors.New("pages: want: export DIR"))
	}
	dir := fset.Arg(0)
	if *check {
		return checked(stdout, "pages export "+dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("pages: %w", err)
	}
	src := overflow.DefaultPageFiles()
	return fs.WalkDir(src, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := fs.ReadFile(src, name)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, name)
		if err := os.WriteFile(dst, raw, 0o644); err != nil {
			return fmt.Errorf("pages: %w", err)
		}
		fmt.Fprintln(stdout, dst)
		return nil
	})
}
