// The documentation's runnable shell blocks, run.
//
// A fenced block whose info string is "sh run" is meant to be pasted as
// it is. TestDocs runs each document's marked blocks in order, in one
// bash session per document, from a fresh directory standing in for the
// checkout, with `go run ./cmd/sluice` running the binary the tests
// share (internal/testkit/testbin). After each command the lines of "# " comments
// right below it are the output the document shows, checked loosely:
// a status line by its code, a header by its name, a JSON object by its
// keys and (for values that are not made at random) their values, any
// other line as a pattern where "..." and "…" match anything. Comment
// lines after a blank line describe the next command and are not checked.
package docs_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"sluice/internal/testkit/testbin"
	"sluice/internal/testkit/testenv"
)

// step is one command of a block and the output the document shows.
type step struct {
	file   string
	line   int
	cmd    string
	expect []string
}

// parse returns the steps of a document's marked blocks, in order.
func parse(t *testing.T, path string) (steps []step, blocks int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```sh run" {
			continue
		}
		blocks++
		var cur *step
		afterCmd := false // the last line was a command or a line of its output
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			l := lines[i]
			switch {
			case strings.TrimSpace(l) == "":
				afterCmd = false
			case strings.HasPrefix(l, "#"):
				if afterCmd && cur != nil {
					cur.expect = append(cur.expect, strings.TrimSpace(strings.TrimPrefix(l, "#")))
				}
			default:
				// A command, or the next line of one: a line ending in
				// a backslash, or inside a for/while/if until its end.
				if cur != nil && afterCmd && len(cur.expect) == 0 && continues(cur.cmd) {
					cur.cmd += "\n" + l
				} else {
					steps = append(steps, step{file: filepath.Base(path), line: i + 1, cmd: l})
					cur = &steps[len(steps)-1]
				}
				afterCmd = true
			}
		}
	}
	return steps, blocks
}

// continues says whether a command so far goes on on the next line.
func continues(cmd string) bool {
	if strings.HasSuffix(strings.TrimSpace(stripComment(cmd)), "\\") {
		return true
	}
	open := 0
	for _, l := range strings.Split(cmd, "\n") {
		for _, w := range strings.Fields(stripComment(l)) {
			switch strings.TrimRight(w, ";") {
			case "for", "while", "until", "if", "{":
				open++
			case "done", "fi", "}":
				open--
			}
		}
	}
	return open > 0
}

func stripComment(l string) string {
	if i := strings.Index(l, " #"); i >= 0 {
		return l[:i]
	}
	return l
}

// Documents run in this order; each gets a fresh directory and session.
var documents = []string{"../README.md", "waiting-room.md", "line-audit.md", "variants.md", "api.md", "orders-and-the-drain.md",
	"operations.md", "rehearse-a-drop.md", "configuration.md", "bots-and-identity.md",
	"in-front-of-your-shop.md", "performance.md", "development.md", "deploying.md"}

func TestDocs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the documentation's commands against real gates: not in -short")
	}
	for _, prog := range []string{"bash", "curl", "sqlite3", "jq"} {
		if _, err := exec.LookPath(prog); err != nil {
			testenv.Missing(t, "the documentation's commands need "+prog+" (apt-get install "+prog+")", "SLUICE_REQUIRE_DOCTOOLS")
		}
	}
	// Every markdown file is in the list, so that a new guide's blocks run.
	all, _ := filepath.Glob("*.md")
	for _, f := range all {
		found := false
		for _, d := range documents {
			found = found || d == f
		}
		if !found {
			t.Errorf("%s is not in the list of documents TestDocs runs", f)
		}
	}
	bin := testbin.Path(t)
	total := 0
	for _, doc := range documents {
		if _, err := os.Stat(doc); os.IsNotExist(err) {
			continue // deploying.md comes from another branch
		}
		steps, blocks := parse(t, doc)
		if blocks == 0 {
			continue
		}
		t.Run(filepath.Base(doc), func(t *testing.T) {
			total += blocks
			runSession(t, bin, steps)
		})
	}
	t.Logf("ran %d marked blocks", total)
	if total < 5 && !strings.Contains(flagRun(), "/") {
		t.Errorf("only %d marked blocks found", total)
	}
}

// runSession runs a document's steps in one bash, in a fresh directory
// that stands in for the checkout; `go run ./cmd/sluice` there runs bin.
func runSession(t *testing.T, bin string, steps []step) {
	dir := t.TempDir()
	work := filepath.Join(dir, "checkout")
	shim := filepath.Join(dir, "bin")
	for _, d := range []string{work, shim} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	realGo, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	// `go run ./cmd/sluice ARGS` execs the shared binary (so `kill %1`
	// stops the gate itself); anything else goes to the real go.
	wrapper := fmt.Sprintf("#!/bin/sh\nif [ \"$1\" = run ] && [ \"$2\" = ./cmd/sluice ]; then shift 2; exec %q \"$@\"; fi\nexec %q \"$@\"\n", bin, realGo)
	if err := os.WriteFile(filepath.Join(shim, "go"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	sh := exec.Command("bash", "--norc", "--noprofile")
	sh.Dir = work
	sh.Env = append(os.Environ(), "PATH="+shim+":"+os.Getenv("PATH"), "TMPDIR="+dir, "HOME="+dir)
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, _ := sh.StdinPipe()
	out, _ := sh.StdoutPipe()
	sh.Stderr = sh.Stdout
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Whatever the blocks left running (a gate in the background) ends
		// with the session: its process group, not by name.
		_ = syscall.Kill(-sh.Process.Pid, syscall.SIGTERM)
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = sh.Wait(); close(done) }()
		// The next document's gate takes the same ports: wait until every
		// process of the group has exited, not just the shell.
		deadline := time.Now().Add(20 * time.Second)
		for syscall.Kill(-sh.Process.Pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		_ = syscall.Kill(-sh.Process.Pid, syscall.SIGKILL)
		<-done
	})
	r := bufio.NewReader(out)
	for i, s := range steps {
		// Each command's output goes to a file; the marker line, with its
		// exit status, tells when it is done.
		outFile := filepath.Join(dir, fmt.Sprintf("out.%d", i))
		marker := fmt.Sprintf("__step_%d_done__", i)
		fmt.Fprintf(stdin, "{\n%s\n} >%q 2>&1 </dev/null; echo %s $?\n", s.cmd, outFile, marker)
		status, err := readMarker(r, marker, 2*time.Minute)
		if err != nil {
			t.Fatalf("%s:%d: %s\n%v", s.file, s.line, s.cmd, err)
		}
		got, _ := os.ReadFile(outFile)
		if status != "0" {
			t.Fatalf("%s:%d: exit %s: %s\n%s", s.file, s.line, status, s.cmd, got)
		}
		for _, e := range join(s.expect) {
			if msg := check(e, string(got)); msg != "" {
				t.Errorf("%s:%d: %s\n  the document shows: %s\n  %s\n  printed:\n%s", s.file, s.line, s.cmd, e, msg, indent(string(got)))
			}
		}
	}
	// Nothing lands in the checkout but the store the docs name as theirs.
	entries, _ := os.ReadDir(work)
	var left []string
	for _, e := range entries {
		if e.Name() != "sluice-data" { // in .gitignore
			left = append(left, e.Name())
		}
	}
	if len(left) > 0 {
		t.Errorf("the commands left %v in the checkout: write them elsewhere (/tmp) or ignore them", left)
	}
}

func readMarker(r *bufio.Reader, marker string, timeout time.Duration) (string, error) {
	type res struct {
		status string
		err    error
	}
	c := make(chan res, 1)
	go func() {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				c <- res{err: fmt.Errorf("the shell ended: %w", err)}
				return
			}
			if rest, ok := strings.CutPrefix(strings.TrimSpace(l), marker+" "); ok {
				c <- res{status: rest}
				return
			}
		}
	}()
	select {
	case x := <-c:
		return x.status, x.err
	case <-time.After(timeout):
		return "", fmt.Errorf("no end after %v", timeout)
	}
}

// join puts a JSON object shown over several comment lines on one, and
// drops remarks in parentheses.
func join(expect []string) []string {
	var out []string
	for i := 0; i < len(expect); i++ {
		e := expect[i]
		if strings.HasPrefix(e, "(") {
			continue
		}
		if strings.HasPrefix(e, "{") {
			for !strings.HasSuffix(e, "}") && i+1 < len(expect) {
				i++
				e += expect[i]
			}
		}
		out = append(out, e)
	}
	return out
}

var (
	statusLine = regexp.MustCompile(`^HTTP/1\.1 (\d{3})`)
	headerLine = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]*): `)
	jsonPair   = regexp.MustCompile(`"([a-z_]+)":("(?:[^"\\]|\\.)*"|-?[0-9.]+|true|false|null)`)
)

// Values made at random, or by the clock, or by a pace: only their key is
// checked.
var volatile = map[string]bool{"order_id": true, "ticket_id": true, "pass": true, "commitment": true, "seed": true,
	"admitted_at": true, "decided_at": true, "pass_expires_at": true, "joined_at": true, "starts_at": true, "ends_at": true,
	"drawn_at": true, "poll_after_seconds": true, "retry_after": true, "drain_rate": true, "estimated_wait_seconds": true,
	"queue_position": true, "detail": true, "buyer_id": false}

// check says what is wrong with out given a line the document shows, or "".
func check(e, out string) string {
	switch {
	case statusLine.MatchString(e):
		code := statusLine.FindStringSubmatch(e)[1]
		if !regexp.MustCompile(`(?m)^HTTP/1\.1 ` + code + `\b`).MatchString(out) {
			return "no HTTP/1.1 " + code
		}
	case headerLine.MatchString(e):
		name := headerLine.FindStringSubmatch(e)[1]
		if !regexp.MustCompile(`(?mi)^` + regexp.QuoteMeta(name) + `: `).MatchString(out) {
			return "no " + name + " header"
		}
	case strings.HasPrefix(e, "{"):
		return checkJSON(e, out)
	default:
		if !linePattern(e).MatchString(out) {
			return "no such line"
		}
	}
	return ""
}

func checkJSON(e, out string) string {
	var objs []map[string]any
	for _, l := range strings.Split(out, "\n") {
		var m map[string]any
		if strings.HasPrefix(strings.TrimSpace(l), "{") && json.Unmarshal([]byte(l), &m) == nil {
			objs = append(objs, m)
		}
	}
	if len(objs) == 0 {
		return "no JSON object"
	}
	var best string
	for _, m := range objs {
		var wrong []string
		for _, p := range jsonPair.FindAllStringSubmatch(e, -1) {
			k, raw := p[1], p[2]
			v, ok := m[k]
			if !ok {
				wrong = append(wrong, k+" missing")
				continue
			}
			if volatile[k] || strings.Contains(raw, "…") || strings.Contains(raw, "...") {
				continue
			}
			var want any
			if err := json.Unmarshal([]byte(raw), &want); err != nil {
				return "the document's " + k + " is not JSON: " + raw
			}
			if fmt.Sprint(want) != fmt.Sprint(v) {
				wrong = append(wrong, fmt.Sprintf("%s is %v, not %v", k, v, want))
			}
		}
		if len(wrong) == 0 {
			return ""
		}
		sort.Strings(wrong)
		best = strings.Join(wrong, "; ")
	}
	return best
}

// linePattern matches a shown line: runs of spaces as any, "..." and "…"
// as anything.
func linePattern(e string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`(?m)^\s*`)
	rest := e
	for rest != "" {
		switch {
		case strings.HasPrefix(rest, "..."):
			b.WriteString(`.*`)
			rest = rest[3:]
		case strings.HasPrefix(rest, "…"):
			b.WriteString(`.*`)
			rest = rest[len("…"):]
		case rest[0] == ' ' || rest[0] == '\t':
			b.WriteString(`\s+`)
			rest = strings.TrimLeft(rest, " \t")
		default:
			_, n := utf8.DecodeRuneInString(rest)
			b.WriteString(regexp.QuoteMeta(rest[:n]))
			rest = rest[n:]
		}
	}
	b.WriteString(`\s*$`)
	return regexp.MustCompile(b.String())
}

func indent(s string) string {
	var b bytes.Buffer
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("    | " + l + "\n")
	}
	return b.String()
}

// flagRun is -test.run: with a subtest named, fewer blocks run.
func flagRun() string {
	if f := flag.Lookup("test.run"); f != nil {
		return f.Value.String()
	}
	return ""
}
