package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// Every command's --help goes to stdout once (so `| less` shows it), says
// what the command does and shows examples; nothing goes to stderr.
func TestEveryCommandsHelpGoesToStdoutOnce(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--help"}, {"drain", "--help"}, {"loadtest", "--help"}, {"status", "--help"},
		{"sale", "--help"}, {"sale", "create", "--help"}, {"draw", "verify", "--help"}, {"draw", "--help"},
		{"line", "verify", "--help"}, {"line", "--help"},
		{"dashboards", "export", "--help"}, {"dashboards", "--help"}, {"pages", "export", "-h"}, {"pages", "--help"},
		{"healthcheck", "--help"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(context.Background(), args, &out, &errb)
			if exitCode(err) != 0 {
				t.Errorf("exit %d: %v", exitCode(err), err)
			}
			if errb.Len() != 0 {
				t.Errorf("stderr: %s", errb.String())
			}
			o := out.String()
			if n := strings.Count(o, "Usage: sluice"); n != 1 {
				t.Errorf("the usage %d times on stdout:\n%s", n, o)
			}
			if !strings.Contains(o, "\nExamples:\n") {
				t.Errorf("no examples:\n%s", o)
			}
			// A description: a paragraph between the usage line and the rest.
			if parts := strings.SplitN(o, "\n\n", 3); len(parts) < 3 || len(parts[1]) < 60 {
				t.Errorf("no description:\n%s", o)
			}
		})
	}
}

// A bad flag or argument prints no usage: the error and where the usage
// is, as the go tool does (main prints the error, to stderr).
func TestABadFlagSaysWhereTheUsageIs(t *testing.T) {
	for _, args := range [][]string{{"serve", "--no-such-flag"}, {"serve", "--listen"}, {"serve", "--workers", "many"}, {"sale", "list", "--ops"},
		{"sale", "frobnicate"}, {"status", "extra"}, {"pages"}, {"dashboards", "export"}, {"draw", "verify", "--gate", "x"},
		{"line", "verify", "--target", "x"}, {"line", "verify", "drop", "extra"}} {
		var out, errb bytes.Buffer
		err := run(context.Background(), args, &out, &errb)
		if err == nil || exitCode(err) != 2 {
			t.Fatalf("%v: err %v, exit %d", args, err, exitCode(err))
		}
		command := "sluice " + args[0]
		if args[0] == "draw" || args[0] == "line" {
			command = "sluice " + args[0] + " verify"
		}
		hint := fmt.Sprintf("Run '%s --help' for usage.", command)
		if !strings.HasSuffix(err.Error(), "\n"+hint) {
			t.Errorf("%v: %q does not end in %q", args, err, hint)
		}
		if out.Len() != 0 || errb.Len() != 0 {
			t.Errorf("%v: stdout %q, stderr %q", args, out.String(), errb.String())
		}
	}
}

// The flag package takes a word in backquotes in a flag's help as the
// name of its value ("-sync always"): a help text must not read as if the
// flag took words it does not. A value's name is a type the flag package
// prints, upper case (N, FILE, NAME=STOCK), or a noun of this list.
func TestFlagHelpNamesOnlyValues(t *testing.T) {
	nouns := map[string]bool{"address": true, "directory": true, "origin": true, "file": true, "URL": true,
		"string": true, "int": true, "uint": true, "int64": true, "uint64": true, "float": true, "duration": true, "value": true}
	upper := regexp.MustCompile(`^[A-Z][A-Z0-9_=]*$`)
	flagLine := regexp.MustCompile(`^  -([a-z][a-z0-9-]*)(?: (.+))?$`)
	for _, args := range [][]string{{"serve", "-h"}, {"drain", "-h"}, {"loadtest", "-h"}, {"status", "-h"}, {"sale", "list", "-h"}, {"draw", "verify", "-h"}, {"line", "verify", "-h"}, {"healthcheck", "-h"}} {
		var out bytes.Buffer
		_ = run(context.Background(), args, &out, &bytes.Buffer{})
		n := 0
		for line := range strings.SplitSeq(out.String(), "\n") {
			m := flagLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			n++
			if v := m[2]; v != "" && !nouns[v] && !upper.MatchString(v) {
				t.Errorf("sluice %s: %q reads as if -%s took %q", args[0], line, m[1], v)
			}
		}
		if n < 3 {
			t.Errorf("sluice %s -h: %d flags found in:\n%s", args[0], n, out.String())
		}
	}
}

func TestPlural(t *testing.T) {
	for n, want := range map[int]string{0: "0 passes", 1: "1 pass", 2: "2 passes"} {
		if got := plural(n, "pass", "passes"); got != want {
			t.Errorf("plural(%d) = %q, want %q", n, got, want)
		}
	}
}
