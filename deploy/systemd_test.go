package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sluice/internal/testkit/testenv"
)

// The unit passes systemd-analyze verify with nothing to say: a misspelt
// key, a bad value or a missing command fails the test. Its ExecStart
// points at a freshly built sluice (verify checks the command exists), and
// the unit keeps what the guide promises.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testenv.Missing(t, "systemd-analyze is not installed (apt-get install systemd)", "SLUICE_REQUIRE_SYSTEMD")
	}
	raw, err := os.ReadFile("systemd/sluice.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(raw)
	for _, want := range []string{
		"DynamicUser=yes", "StateDirectory=sluice", "LimitNOFILE=", "ExecReload=/bin/kill -HUP $MAINPID",
		"ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet=\n", "EnvironmentFile=-/etc/sluice/env",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit lacks %q", want)
		}
	}
	dir := t.TempDir()
	unit = strings.ReplaceAll(unit, "/usr/local/bin/sluice", sluiceBinary(t))
	path := filepath.Join(dir, "sluice.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	// verify exits 0 on an unknown key: what it says about the unit counts.
	about := regexp.MustCompile(`(?m)^.*`+regexp.QuoteMeta(path)+`.*$|(?m)^.*sluice\.service.*$`).FindAllString(string(out), -1)
	if err != nil || len(about) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// The systemd recipe installs a single gate's config, not a cluster
// member's (it once installed deploy/cluster/g1.yaml as the only file),
// and the unit's own command lines accept it with the unit's
// environment: ExecStartPre (--check) passes and ExecStart is the same
// command without --check.
func TestSystemdRecipe(t *testing.T) {
	unit, err := os.ReadFile("systemd/sluice.service")
	if err != nil {
		t.Fatal(err)
	}
	guide, err := os.ReadFile("../docs/deploying.md")
	if err != nil {
		t.Fatal(err)
	}
	install := regexp.MustCompile(`(?m)^(?:#\s+)?install -D -m 0644 (\S+) /etc/sluice/sluice\.yaml`)
	for what, text := range map[string]string{"docs/deploying.md": string(guide), "the unit's comment": string(unit)} {
		m := install.FindAllStringSubmatch(text, -1)
		if len(m) != 1 || m[0][1] != "deploy/systemd/sluice.yaml" {
			t.Errorf("%s installs %v as /etc/sluice/sluice.yaml, want deploy/systemd/sluice.yaml once", what, m)
		}
	}
	var env []string
	exec1 := map[string]string{}
	for l := range strings.SplitSeq(string(unit), "\n") {
		k, v, ok := strings.Cut(l, "=")
		switch {
		case !ok:
		case k == "Environment":
			env = append(env, v)
		case k == "ExecStart" || k == "ExecStartPre":
			exec1[k] = v
		}
	}
	if exec1["ExecStartPre"] != exec1["ExecStart"]+" --check" {
		t.Fatalf("ExecStartPre %q is not ExecStart %q with --check", exec1["ExecStartPre"], exec1["ExecStart"])
	}
	args := strings.Fields(exec1["ExecStartPre"])
	if args[0] != "/usr/local/bin/sluice" || !slices.Contains(args, "/etc/sluice/sluice.yaml") {
		t.Fatalf("ExecStartPre: %q", args)
	}
	for i, a := range args {
		if a == "/etc/sluice/sluice.yaml" {
			args[i] = "systemd/sluice.yaml"
		}
	}
	cmd := exec.Command(sluiceBinary(t), args[1:]...)
	cmd.Dir, _ = filepath.Abs(".")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLUICE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	// The unit's environment, and the secret the recipe puts in /etc/sluice/env.
	cmd.Env = append(append(cmd.Env, env...), "SLUICE_ADMIN_TOKEN=0123456789abcdef")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "sluice: configuration OK (gate+drain, public http://:8080, ops 127.0.0.1:9464, JetStream in /var/lib/sluice") {
		t.Fatalf("the unit's check: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "cluster") {
		t.Errorf("a single gate's config runs a cluster: %s", out)
	}
}
