package docs_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"sluice/internal/testkit/testbin"
)

// TestEveryDocumentedInvocationRuns collects every sluice command line
// the project shows a user or an operator, and runs each through the
// built binary: in README.md and docs/*.md (the shell blocks, and the
// inline `sluice …` spans that give arguments), in deploy/ (the systemd
// unit's Exec lines, the Kubernetes StatefulSet's args and environment,
// the image's ENTRYPOINT, CMD and HEALTHCHECK, every file's comments that
// show one: the cluster configs', the nginx recipe's) and in the Examples
// of every command's --help. `serve` and `drain` run with --check (the
// configuration is parsed and checked, nothing is started), as does
// every other command (each takes --check: its arguments are checked and
// nothing is sent, fetched or written); a line that asks for --help or
// the version runs as it is. Each must exit 0.
//
// Placeholders are substituted by these rules (subst):
//   - the binary: `go run ./cmd/sluice`, `./sluice`, `sluice`,
//     `/usr/local/bin/sluice`, `/sluice`;
//   - shell variables and substitutions: $DATA, "$(mktemp -d)" and
//     $DIR are a fresh directory, $DB a SQLite file in it, $TICKET a
//     ticket id, $(POD_NAME) (Kubernetes) the first pod's name; any
//     other variable fails the line (list it or add a rule);
//   - a value left out, `…` or `...`: dropped when it is a word of its
//     own, "change-me" when it is a variable's value (SLUICE_ADMIN_TOKEN=…);
//   - a synopsis' words in capitals standing for a value (DIR, NAME,
//     SALE, URL, ID, FILE, N, D, T) and <url>-like words: a value of
//     that kind (the FILE of --tickets a file of ticket ids); [optional]
//     parts are kept, without their brackets;
//   - files under /etc/sluice/: made by the test by their name (a
//     certificate and its key, a CA, a token file; sluice.yaml is the
//     file the unit's recipe installs, deploy/systemd/sluice.yaml, or,
//     in a cluster config's own comment, that config itself, its own
//     /etc/sluice/ files made likewise); a relative
//     path is the checkout's (docs/examples/sluice.yaml), sluice.yaml
//     (serve --help's) the sample config, tee.schema.json the schema the
//     shop guide writes, ./pages what `sluice pages export` writes;
//   - a redirection (> file) and a trailing & are the shell's: dropped;
//   - secrets the manifests take from Kubernetes Secrets, the ones a
//     cluster config's comment says come from the environment
//     (SLUICE_CLUSTER_PASSWORD), and the token the README exports
//     (SLUICE_ADMIN_TOKEN): example values.
//
// A line it cannot run is listed in unrunnable with the reason; the test
// fails on a line that does not run and is not listed, and on a listed
// line no document shows any more.
func TestEveryDocumentedInvocationRuns(t *testing.T) {
	bin := testbin.Path(t)
	fx := newFixtures(t, bin)
	invs := collectInvocations(t, bin)
	seen := map[string]bool{}
	ran := 0
	for _, inv := range invs {
		if reason, ok := unrunnable[inv.text]; ok {
			seen[inv.text] = true
			t.Logf("not run (%s): %s: %s", reason, inv.where, inv.text)
			continue
		}
		args, env, err := fx.subst(inv)
		if err != nil {
			t.Errorf("%s: %s: %v (list it in unrunnable with a reason, or add a substitution rule)", inv.where, inv.text, err)
			continue
		}
		code, out, errOut := fx.run(t, env, args)
		ran++
		if code != 0 {
			t.Errorf("%s: %s\n  ran: sluice %s (env %v)\n  exit %d\n  stdout: %s\n  stderr: %s",
				inv.where, inv.text, strings.Join(args, " "), env, code, out, errOut)
		}
	}
	for text := range unrunnable {
		if !seen[text] {
			t.Errorf("unrunnable lists %q, which no document shows any more: remove it", text)
		}
	}
	if ran < 60 {
		t.Errorf("ran %d invocations: the collector lost some", ran)
	}
	t.Logf("ran %d documented invocations of %d found", ran, len(invs))
}

// unrunnable are documented command lines the test cannot run, and why.
var unrunnable = map[string]string{
	"sluice loadtest merge": "prose naming the command; its arguments are a sharded rehearsal's reports",
	"sluice loadtest polls": "prose naming the command; its --tickets FILE follows in the same sentence",
	"go run ./cmd/sluice loadtest --waiting-room --sale crowd --buyers 900 --before 10s --shard $i/3 --json --quiet >/tmp/shard$i.json &": "a shell loop's body ($i is 1 to 3): the block runs whole in TestDocs",
	"go run ./cmd/sluice loadtest merge /tmp/shard1.json /tmp/shard2.json /tmp/shard3.json":                                               "its files are the shards' reports the block writes just before: the block runs whole in TestDocs",
	"sluice loadtest merge /tmp/shard1.json /tmp/shard2.json /tmp/shard3.json":                                                            "its files are the reports of a sharded rehearsal run just before (TestLoadtestShardsAndMergeThroughTheBinary runs the two through the binary, with --check too)",
}

// invocation is one command line as a document shows it.
type invocation struct {
	where string   // file:line
	text  string   // as shown, whitespace collapsed
	env   []string // VAR=value set on the line or by the file (a unit's Environment=)
	args  []string // the words after the binary, before substitution
	// config is the file a cluster config's comment means by
	// /etc/sluice/sluice.yaml: the config itself.
	config string
}

// binaryForms are how documents name the binary, longest first.
var binaryForms = [][]string{{"go", "run", "./cmd/sluice"}, {"./sluice"}, {"/usr/local/bin/sluice"}, {"/sluice"}, {"sluice"}}

var commands = map[string]bool{"serve": true, "drain": true, "loadtest": true, "status": true, "sale": true, "draw": true, "line": true,
	"dashboards": true, "pages": true, "healthcheck": true, "version": true, "--version": true, "--help": true, "help": true}

// commandWords are how many words name the command (`sale create NAME`
// is three: a span with no more is a name in prose, not an invocation).
func commandWords(args []string) int {
	switch args[0] {
	case "sale":
		return min(len(args), 3)
	case "draw", "line", "dashboards", "pages":
		return min(len(args), 2)
	}
	return 1
}

// parseInvocation finds the sluice command in a shell command's words:
// leading VAR=value assignments, the binary, a known command. ok is false
// for anything else.
func parseInvocation(words []string) (env, args []string, ok bool) {
	for len(words) > 0 && regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`).MatchString(words[0]) {
		env, words = append(env, words[0]), words[1:]
	}
	for _, form := range binaryForms {
		if len(words) > len(form) && slices.Equal(words[:len(form)], form) && commands[words[len(form)]] {
			for _, w := range words[len(form):] {
				switch {
				case w == "&":
				case len(args) > 0 && regexp.MustCompile(`^[0-9]?>>?$`).MatchString(args[len(args)-1]):
					args = args[:len(args)-1] // a redirection and its file: the shell's, not sluice's
				default:
					args = append(args, w)
				}
			}
			return env, args, true
		}
	}
	return nil, nil, false
}

func collectInvocations(t *testing.T, bin string) []invocation {
	t.Helper()
	var out []invocation
	docs, _ := filepath.Glob("*.md")
	for _, f := range append([]string{"../README.md"}, docs...) {
		out = append(out, markdownInvocations(t, f)...)
	}
	deploy := []string{"../deploy/systemd/sluice.service", "../deploy/Containerfile", "../deploy/nginx/sluice.conf"}
	clusters, _ := filepath.Glob("../deploy/cluster/*.yaml")
	deploy = append(deploy, clusters...)
	for _, f := range deploy {
		out = append(out, fileInvocations(t, f)...)
	}
	manifests, _ := filepath.Glob("../deploy/kubernetes/*.yaml")
	for _, f := range manifests {
		out = append(out, manifestInvocations(t, f)...)
	}
	out = append(out, helpInvocations(t, bin)...)
	return out
}

// markdownInvocations: the shell blocks' commands and the inline spans.
func markdownInvocations(t *testing.T, path string) []invocation {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(path, "../")
	lines := strings.Split(string(raw), "\n")
	var out []invocation
	var prose strings.Builder // outside fences, with line marks
	lineOf := []int{}         // prose byte offset -> line, per line start
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if fence := strings.TrimSpace(l); strings.HasPrefix(fence, "```") {
			info := strings.Fields(strings.TrimPrefix(fence, "```"))
			shell := len(info) == 0 || slices.Contains([]string{"sh", "bash", "console", "shell"}, info[0])
			start := i
			var block []string
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
				block = append(block, lines[i])
			}
			// A block whose commands have a prompt shows their output too.
			console := slices.ContainsFunc(block, func(l string) bool { return strings.HasPrefix(l, "$ ") })
			if shell {
				for _, c := range shellCommands(block, console) {
					for _, seg := range segments(c.text) {
						if env, args, ok := parseInvocation(shellWords(seg)); ok {
							out = append(out, invocation{where: fmt.Sprintf("%s:%d", name, start+1+c.line), text: collapse(seg), env: env, args: args})
						}
					}
				}
			}
			continue
		}
		lineOf = append(lineOf, prose.Len(), i+1)
		prose.WriteString(l + "\n")
	}
	text := prose.String()
	for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatchIndex(text, -1) {
		span := collapse(text[m[2]:m[3]])
		env, args, ok := parseInvocation(shellWords(span))
		if !ok {
			continue
		}
		if args = dropEllipses(args); len(args) <= commandWords(args) && !slices.Contains(args, "--help") {
			continue // a command's name in a sentence
		}
		line := 0
		for j := 0; j+1 < len(lineOf); j += 2 {
			if lineOf[j] <= m[0] {
				line = lineOf[j+1]
			}
		}
		out = append(out, invocation{where: fmt.Sprintf("%s:%d", name, line), text: span, env: env, args: args})
	}
	return out
}

type shellLine struct {
	line int // within the block, from 1
	text string
}

// shellCommands joins a block's continued lines and drops comments,
// here-documents and (in a console block) output.
func shellCommands(block []string, console bool) []shellLine {
	var out []shellLine
	heredoc := ""
	for i := 0; i < len(block); i++ {
		l := block[i]
		if heredoc != "" {
			if strings.TrimSpace(l) == heredoc {
				heredoc = ""
			}
			continue
		}
		if console {
			if !strings.HasPrefix(l, "$ ") {
				continue
			}
			l = strings.TrimPrefix(l, "$ ")
		}
		start := i
		for strings.HasSuffix(strings.TrimRight(l, " "), "\\") && i+1 < len(block) {
			i++
			l = strings.TrimSuffix(strings.TrimRight(l, " "), "\\") + " " + strings.TrimSpace(block[i])
		}
		l = stripShellComment(l)
		if m := regexp.MustCompile(`<<-?'?"?([A-Z]+)'?"?`).FindStringSubmatch(l); m != nil {
			heredoc = m[1]
		}
		if strings.TrimSpace(l) != "" {
			out = append(out, shellLine{line: start + 1, text: l})
		}
	}
	return out
}

// stripShellComment drops a shell comment: a # at a word's start outside quotes.
func stripShellComment(l string) string {
	var q rune
	for i, r := range l {
		switch {
		case q != 0:
			if r == q {
				q = 0
			}
		case r == '\'' || r == '"':
			q = r
		case r == '#' && (i == 0 || l[i-1] == ' ' || l[i-1] == '\t'):
			return strings.TrimSpace(l[:i])
		}
	}
	return l
}

// segments splits a command line at ;, &&, || and | outside quotes and
// $( ).
func segments(l string) []string {
	var out []string
	var q rune
	depth, start := 0, 0
	for i := 0; i < len(l); i++ {
		c := rune(l[i])
		switch {
		case q != 0:
			if c == q {
				q = 0
			}
		case c == '\'' || c == '"':
			q = c
		case c == '(':
			depth++
		case c == ')':
			depth--
		case depth == 0 && (c == ';' || c == '|' || (c == '&' && i+1 < len(l) && l[i+1] == '&')):
			out = append(out, l[start:i])
			if i+1 < len(l) && (l[i+1] == '|' || l[i+1] == '&') {
				i++
			}
			start = i + 1
		}
	}
	return append(out, l[start:])
}

// shellWords splits a command into words as a shell would, quotes
// removed; $( ) stays one word.
func shellWords(s string) []string {
	var out []string
	var cur strings.Builder
	in := false
	var q rune
	depth := 0
	for _, c := range s {
		switch {
		case q != 0:
			if c == q {
				q = 0
			} else {
				cur.WriteRune(c)
			}
		case c == '\'' || c == '"':
			q, in = c, true
		case c == '(':
			depth++
			cur.WriteRune(c)
			in = true
		case c == ')':
			depth--
			cur.WriteRune(c)
		case (c == ' ' || c == '\t' || c == '\n') && depth == 0:
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(c)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

func collapse(s string) string { return strings.Join(strings.Fields(s), " ") }

func dropEllipses(args []string) []string {
	return slices.DeleteFunc(slices.Clone(args), func(a string) bool { return a == "…" || a == "..." })
}

// fileInvocations: a systemd unit's Exec lines (with its Environment=),
// an image's ENTRYPOINT, CMD and HEALTHCHECK (with its ENV), and any
// sluice command a file's comments show.
func fileInvocations(t *testing.T, path string) []invocation {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(path, "../")
	lines := strings.Split(string(raw), "\n")
	var out []invocation
	var env []string
	var entrypoint []string
	var cmdLine int
	var cmd []string
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		for strings.HasSuffix(l, "\\") && i+1 < len(lines) {
			i++
			l = strings.TrimSuffix(l, "\\") + " " + strings.TrimSpace(lines[i])
		}
		where := fmt.Sprintf("%s:%d", name, i+1)
		switch {
		case strings.HasPrefix(l, "Environment="):
			env = append(env, shellWords(strings.TrimPrefix(l, "Environment="))...)
		case strings.HasPrefix(l, "ENV "):
			env = append(env, shellWords(strings.TrimPrefix(l, "ENV "))...)
		case strings.HasPrefix(l, "ENTRYPOINT "):
			entrypoint = jsonWords(t, strings.TrimPrefix(l, "ENTRYPOINT "))
		case strings.HasPrefix(l, "CMD "):
			cmd, cmdLine = jsonWords(t, strings.TrimPrefix(l, "CMD ")), i+1
		case strings.HasPrefix(l, "HEALTHCHECK "):
			_, after, _ := strings.Cut(l, " CMD ")
			if _, args, ok := parseInvocation(jsonWords(t, after)); ok {
				out = append(out, invocation{where: where, text: collapse(l), env: slices.Clone(env), args: args})
			}
		case strings.HasPrefix(l, "Exec") && strings.Contains(l, "="):
			key, v, _ := strings.Cut(l, "=")
			if _, args, ok := parseInvocation(shellWords(v)); ok {
				out = append(out, invocation{where: where, text: key + "=" + v, env: slices.Clone(env), args: args})
			}
		case strings.HasPrefix(l, "#"):
			c := strings.TrimSpace(strings.TrimLeft(l, "#"))
			if _, after, ok := strings.Cut(c, ": sluice "); ok {
				c = "sluice " + after // "Gate 1 of …: sluice serve --config …"
			}
			if e, args, ok := parseInvocation(shellWords(c)); ok {
				inv := invocation{where: where, text: collapse(c), env: e, args: args}
				if strings.HasSuffix(path, ".yaml") {
					inv.config = path
					// The secrets its comment says come from the environment.
					if strings.Contains(string(raw), "SLUICE_CLUSTER_PASSWORD") {
						inv.env = append(inv.env, "SLUICE_CLUSTER_PASSWORD=route-password")
					}
				}
				out = append(out, inv)
			}
		}
	}
	if len(entrypoint) > 0 {
		if _, args, ok := parseInvocation(append(entrypoint, cmd...)); ok {
			out = append(out, invocation{where: fmt.Sprintf("%s:%d", name, cmdLine), text: "ENTRYPOINT " + strings.Join(entrypoint, " ") + " CMD " + strings.Join(cmd, " "), env: env, args: args})
		}
	}
	return out
}

func jsonWords(t *testing.T, s string) []string {
	t.Helper()
	var w []string
	if err := yaml.Unmarshal([]byte(s), &w); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return w
}

// manifestInvocations: the args of every container running the sluice
// image, with the environment the manifest gives it.
func manifestInvocations(t *testing.T, path string) []invocation {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []invocation
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			break
		}
		walk(doc, func(m map[string]any) {
			image, _ := m["image"].(string)
			if !strings.Contains(image, "sluice") {
				return
			}
			words := []string{"/sluice"}
			for _, k := range []string{"command", "args"} {
				if l, ok := m[k].([]any); ok {
					if k == "command" {
						words = nil
					}
					for _, a := range l {
						words = append(words, fmt.Sprint(a))
					}
				}
			}
			var env []string
			if l, ok := m["env"].([]any); ok {
				for _, e := range l {
					e := e.(map[string]any)
					env = append(env, fmt.Sprintf("%s=%s", e["name"], manifestValue(e)))
				}
			}
			if _, args, ok := parseInvocation(words); ok {
				out = append(out, invocation{where: strings.TrimPrefix(path, "../") + " (" + fmt.Sprint(m["name"]) + ")", text: strings.Join(words, " "), env: env, args: args})
			}
		})
	}
	return out
}

// manifestValue is an env entry's value: its own, or an example value
// for what a Secret or the pod gives.
func manifestValue(e map[string]any) string {
	if v, ok := e["value"]; ok {
		return fmt.Sprint(v)
	}
	from, _ := e["valueFrom"].(map[string]any)
	if ref, ok := from["secretKeyRef"].(map[string]any); ok {
		return map[string]string{
			"admin-token":      "change-me",
			"cluster-password": "route-password",
			"backend":          "postgres://sluice:pw@db.example:5432/shop?sslmode=require",
		}[fmt.Sprint(ref["key"])]
	}
	if _, ok := from["fieldRef"]; ok {
		return "sluice-0"
	}
	if _, ok := from["resourceFieldRef"]; ok {
		return "2147483648"
	}
	return ""
}

func walk(v any, f func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		f(v)
		for _, c := range v {
			walk(c, f)
		}
	case []any:
		for _, c := range v {
			walk(c, f)
		}
	}
}

// helpInvocations: the Examples of every command's --help.
func helpInvocations(t *testing.T, bin string) []invocation {
	t.Helper()
	var out []invocation
	for _, cmd := range [][]string{{"serve"}, {"drain"}, {"loadtest"}, {"status"}, {"sale"}, {"draw", "verify"},
		{"dashboards", "export"}, {"pages", "export"}, {"healthcheck"}, {}} {
		help, err := exec.Command(bin, append(cmd, "--help")...).Output()
		if err != nil {
			t.Fatalf("sluice %s --help: %v", strings.Join(cmd, " "), err)
		}
		in := false
		for l := range strings.SplitSeq(string(help), "\n") {
			switch {
			case l == "Examples:":
				in = true
			case in && strings.TrimSpace(l) == "":
				in = false
			case in:
				for _, seg := range segments(stripShellComment(l)) {
					if env, args, ok := parseInvocation(shellWords(seg)); ok {
						out = append(out, invocation{where: "sluice " + strings.Join(cmd, " ") + " --help", text: collapse(seg), env: env, args: args})
					}
				}
			}
		}
	}
	return out
}

// fixtures are the files and directories the substitutions name.
type fixtures struct {
	bin, dir, work string
	files          map[string]string // /etc/sluice/... -> a file made here
}

func newFixtures(t *testing.T, bin string) *fixtures {
	t.Helper()
	dir := t.TempDir()
	fx := &fixtures{bin: bin, dir: dir, work: filepath.Join(dir, "work"), files: map[string]string{}}
	etc := filepath.Join(dir, "etc")
	for _, d := range []string{fx.work, etc} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cert, key := writePair(t, etc)
	token := filepath.Join(etc, "token")
	write(t, token, "change-me\n")
	for _, name := range []string{"fullchain.pem", "route.pem", "tls.crt", "ca.crt", "route-ca.pem"} {
		fx.files[name] = cert
	}
	for _, name := range []string{"privkey.pem", "route-key.pem", "tls.key"} {
		fx.files[name] = key
	}
	for _, name := range []string{"token", "admin-token"} {
		fx.files[name] = token
	}
	fx.files["env"] = filepath.Join(etc, "env") // the unit's secrets: a file a config's comment names
	write(t, fx.files["env"], "SLUICE_ADMIN_TOKEN=change-me\n")
	root, _ := filepath.Abs("..")
	fx.files["sluice.yaml"] = filepath.Join(root, "deploy", "systemd", "sluice.yaml")
	// What the documents' commands find in their directory: the
	// checkout's files, the shop guide's schema, exported pages.
	for _, d := range []string{"docs", "deploy", "dashboards"} {
		if err := os.Symlink(filepath.Join(root, d), filepath.Join(fx.work, d)); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(fx.work, "tee.schema.json"), `{"type":"object","required":["sku"]}`)
	write(t, filepath.Join(fx.work, "schema.json"), `{"type":"object"}`)
	write(t, filepath.Join(fx.work, "tickets.txt"), "z3uaocb5ozbaiv27ll6fnc5bmy\n")
	// The config file of serve --help's example: the sample one.
	sample, err := os.ReadFile(filepath.Join(root, "docs", "examples", "sluice.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(fx.work, "sluice.yaml"), string(sample))
	if out, err := exec.Command(bin, "pages", "export", filepath.Join(fx.work, "pages")).CombinedOutput(); err != nil {
		t.Fatalf("pages export: %v %s", err, out)
	}
	return fx
}

var (
	varRef     = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?|\$\(([^)]*)\)`)
	capsValues = map[string]string{"DIR": "out", "NAME": "s1", "SALE": "s1", "URL": "http://127.0.0.1:8080", "ID": "z3uaocb5ozbaiv27ll6fnc5bmy",
		"FILE": "schema.json", "N": "5", "D": "10s", "T": "now"}
)

// subst applies the rules of TestEveryDocumentedInvocationRuns.
func (fx *fixtures) subst(inv invocation) (args, env []string, err error) {
	fresh, err := os.MkdirTemp(fx.dir, "data")
	if err != nil {
		return nil, nil, err
	}
	vars := map[string]string{"DATA": fresh, "DIR": fresh, "DB": filepath.Join(fresh, "orders.db"), "TICKET": "z3uaocb5ozbaiv27ll6fnc5bmy"}
	expand := func(w string) (string, error) {
		var bad error
		w = varRef.ReplaceAllStringFunc(w, func(m string) string {
			sub := varRef.FindStringSubmatch(m)
			switch {
			case sub[2] == "mktemp -d":
				return fresh
			case sub[2] == "POD_NAME":
				return "sluice-0"
			case sub[1] != "" && vars[sub[1]] != "":
				return vars[sub[1]]
			}
			bad = fmt.Errorf("no substitution rule for %s", m)
			return m
		})
		if strings.HasPrefix(w, "/etc/sluice/") {
			f, ok := fx.files[filepath.Base(w)]
			if ok && filepath.Base(w) == "sluice.yaml" && inv.config != "" {
				f, bad = fx.configCopy(inv.config)
			}
			if !ok {
				bad = errors.Join(bad, fmt.Errorf("no fixture for %s", w))
			}
			w = f
		}
		return w, bad
	}
	for _, e := range inv.env {
		k, v, _ := strings.Cut(e, "=")
		if v == "…" || v == "..." {
			v = "change-me"
		}
		if v, err = expand(v); err != nil {
			return nil, nil, err
		}
		env = append(env, k+"="+v)
	}
	words := dropEllipses(inv.args)
	for i, w := range words {
		w = strings.Trim(w, "[]")
		if v, ok := capsValues[w]; ok && i > 0 {
			w = v
			if w == "schema.json" && words[i-1] == "--tickets" {
				w = "tickets.txt" // a file of ticket ids, one a line
			}
		} else if m := regexp.MustCompile(`^<([a-z-]+)>$`).FindStringSubmatch(w); m != nil {
			w = capsValues[strings.ToUpper(m[1])]
		}
		if w, err = expand(w); err != nil {
			return nil, nil, err
		}
		// --flag=/etc/sluice/... (the manifests' form)
		if k, v, ok := strings.Cut(w, "="); ok && strings.HasPrefix(k, "--") {
			if v, err = expand(v); err != nil {
				return nil, nil, err
			}
			w = k + "=" + v
		}
		args = append(args, w)
	}
	if !slices.ContainsFunc(args, func(a string) bool {
		return a == "--help" || a == "-h" || a == "help" || a == "version" || a == "--version"
	}) {
		args = append(args, "--check")
	}
	return args, env, nil
}

// configCopy is a copy of a config file whose /etc/sluice/ files are the
// fixtures' (a cluster config names its route certificates there).
func (fx *fixtures) configCopy(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var missing error
	text := regexp.MustCompile(`/etc/sluice/[A-Za-z0-9._/-]+`).ReplaceAllStringFunc(string(raw), func(p string) string {
		f, ok := fx.files[filepath.Base(p)]
		if !ok {
			missing = errors.Join(missing, fmt.Errorf("%s names %s: no fixture for it", path, p))
		}
		return f
	})
	f, err := os.CreateTemp(fx.dir, "*-"+filepath.Base(path))
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, err = f.WriteString(text)
	return f.Name(), errors.Join(missing, err)
}

// run runs the binary in the fixtures' work directory with env on top of
// an environment without the test's own SLUICE_ variables (and the token
// the README exports).
func (fx *fixtures) run(t *testing.T, env, args []string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(fx.bin, args...)
	cmd.Dir = fx.work
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLUICE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(append(cmd.Env, "SLUICE_ADMIN_TOKEN=change-me"), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return -1, o.String(), "still running after 20 s: --check must start nothing"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), o.String(), e.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, o.String(), e.String()
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The collector must find what it is meant to find: a change that makes
// it miss a kind of line would let such lines break unseen.
func TestCollectorFindsEveryKind(t *testing.T) {
	invs := collectInvocations(t, testbin.Path(t))
	kinds := map[string]int{}
	for _, inv := range invs {
		switch {
		case strings.HasPrefix(inv.where, "sluice "):
			kinds["help"]++
		case strings.Contains(inv.where, "kubernetes"):
			kinds["kubernetes"]++
		case strings.Contains(inv.where, "sluice.service"):
			kinds["systemd"]++
		case strings.Contains(inv.where, "Containerfile"):
			kinds["image"]++
		case strings.Contains(inv.where, "cluster/"):
			kinds["cluster"]++
		case strings.HasSuffix(strings.Split(inv.where, ":")[0], ".md"):
			kinds["markdown"]++
		}
	}
	var missing []string
	for _, k := range []string{"help", "kubernetes", "systemd", "image", "cluster", "markdown"} {
		if kinds[k] == 0 {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("no invocation found in: %v (found %v)", missing, kinds)
	}
}

// writePair writes a self-signed certificate (its own CA) and its key.
func writePair(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	write(t, cert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	write(t, key, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})))
	return cert, key
}
