package version

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFrom(t *testing.T) {
	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "c980a91d2c1e4f0a9b8c7d6e5f4a3b2c1d0e9f8a"},
		{Key: "vcs.time", Value: "2026-03-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}
	for _, tc := range []struct {
		name, stamp, main string
		settings          []debug.BuildSetting
		ok                bool
		want              string
	}{
		{name: "no build info", ok: false, want: "devel"},
		{name: "go run", main: "(devel)", ok: true, want: "devel"},
		{name: "checkout, no module version", main: "(devel)", settings: vcs, ok: true, want: "devel+c980a91d2c1e-dirty"},
		{name: "pseudo-version", main: "v0.0.0-20260301100000-c980a91d2c1e+dirty", settings: vcs, ok: true, want: "v0.0.0-20260301100000-c980a91d2c1e+dirty"},
		{name: "stamped wins", stamp: "v1.4.0", main: "v0.0.0-x", settings: vcs, ok: true, want: "v1.4.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bi := &debug.BuildInfo{GoVersion: "go1.26", Main: debug.Module{Version: tc.main}, Settings: tc.settings}
			if got := from(tc.stamp, bi, tc.ok).Version; got != tc.want {
				t.Fatalf("version %q, want %q", got, tc.want)
			}
		})
	}
	in := from("v1.4.0", &debug.BuildInfo{GoVersion: "go1.26", Settings: vcs}, true)
	if s := in.String(); s != "sluice v1.4.0 (c980a91d2c1e, modified) committed 2026-03-01T10:00:00Z go1.26" {
		t.Fatalf("String %q", s)
	}
}

// A binary linked with -X carries the stamp: what deploy/build-image.sh
// relies on.
func TestLinkerStamp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	// The program lives inside the module so that it may import an
	// internal package: a temporary folder under testdata, which ./...
	// never lists.
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	pkg, err := os.MkdirTemp("testdata", "stamp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.RemoveAll(pkg)
		os.Remove("testdata") // only if empty
	})
	src := "package main\n\nimport (\n\t\"fmt\"\n\n\t\"sluice/internal/version\"\n)\n\nfunc main() { fmt.Print(version.Get().Version) }\n"
	if err := os.WriteFile(filepath.Join(pkg, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "stamped")
	out, err := exec.Command("go", "build", "-ldflags", "-X sluice/internal/version.stamp=v9.8.7-test", "-o", bin, "./"+pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	got, err := exec.Command(bin).Output()
	if err != nil || strings.TrimSpace(string(got)) != "v9.8.7-test" {
		t.Fatalf("stamped binary says %q (%v)", got, err)
	}
}
