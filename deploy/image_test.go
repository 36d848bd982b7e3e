package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sluice/internal/testkit/testenv"
)

// The image, built by deploy/build-image.sh with podman, holds a sluice
// that serves an order. podman run needs cgroups these machines lack, so
// the image's filesystem is exported and its entrypoint run in a chroot,
// as its user, with its environment: the same files and settings a
// container would see.
func TestImageServesAnOrderInAChroot(t *testing.T) {
	if _, err := exec.LookPath("podman"); err != nil {
		testenv.Missing(t, "podman is not installed (apt-get install podman)", "SLUICE_REQUIRE_PODMAN")
	}
	if os.Geteuid() != 0 {
		testenv.Missing(t, "chroot needs root", "SLUICE_REQUIRE_PODMAN")
	}
	if testing.Short() {
		t.Skip("builds an image")
	}
	image, version := "localhost/sluice-test", fmt.Sprintf("v0.0.0-imagetest.%d", os.Getpid())
	build := exec.Command("bash", "build-image.sh")
	build.Env = append(os.Environ(), "IMAGE="+image, "VERSION="+version)
	out, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("build-image.sh: %v\n%s", err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
	ref := image + ":" + version
	t.Cleanup(func() { _ = exec.Command("podman", "rmi", "-f", ref, image+":latest").Run() })

	var inspect []struct {
		Size   int64
		Config struct {
			User         string
			Env          []string
			Entrypoint   []string
			Cmd          []string
			ExposedPorts map[string]struct{}
			Volumes      map[string]struct{}
			Labels       map[string]string
		}
		Healthcheck *struct{ Test []string }
	}
	raw, err := exec.Command("podman", "image", "inspect", ref).Output()
	if err != nil || json.Unmarshal(raw, &inspect) != nil || len(inspect) != 1 {
		t.Fatalf("podman image inspect %s: %v", ref, err)
	}
	cfg := inspect[0].Config
	if cfg.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532 (not root)", cfg.User)
	}
	if _, ok := cfg.Volumes["/data"]; !ok {
		t.Errorf("volumes %v, want /data", cfg.Volumes)
	}
	for _, p := range []string{"8080/tcp", "9464/tcp", "6222/tcp"} {
		if _, ok := cfg.ExposedPorts[p]; !ok {
			t.Errorf("exposed ports %v lack %s", cfg.ExposedPorts, p)
		}
	}
	if inspect[0].Healthcheck == nil || !strings.Contains(strings.Join(inspect[0].Healthcheck.Test, " "), "/sluice healthcheck") {
		t.Errorf("healthcheck %+v, want one through /sluice healthcheck", inspect[0].Healthcheck)
	}
	if cfg.Labels["org.opencontainers.image.version"] != version {
		t.Errorf("version label %q, want %q", cfg.Labels["org.opencontainers.image.version"], version)
	}
	t.Logf("image %s: %d bytes", ref, inspect[0].Size)

	// The filesystem, as a container would have it.
	root := t.TempDir()
	cid, err := exec.Command("podman", "create", ref).Output()
	if err != nil {
		t.Fatalf("podman create: %v", err)
	}
	id := strings.TrimSpace(string(cid))
	t.Cleanup(func() { _ = exec.Command("podman", "rm", "-f", id).Run() })
	export := exec.Command("sh", "-c", "podman export "+id+" | tar -x -C "+root)
	if out, err := export.CombinedOutput(); err != nil {
		t.Fatalf("podman export: %v\n%s", err, out)
	}
	entries, _ := os.ReadDir(root)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	t.Logf("image root: %v", names)
	if fi, err := os.Stat(filepath.Join(root, "data")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 65532 {
		t.Fatalf("/data in the image: %v, want owned by 65532", err)
	}

	uid, gid, _ := strings.Cut(cfg.User, ":")
	chroot := func(args ...string) *exec.Cmd {
		c := exec.Command("chroot", append([]string{"--userspec=" + uid + ":" + gid, root}, args...)...)
		c.Env = cfg.Env
		return c
	}
	if out, err := chroot(append(cfg.Entrypoint, "version")...).Output(); err != nil || !strings.Contains(string(out), version) {
		t.Fatalf("sluice version in the image: %q (%v), want %s", out, err, version)
	}
	api, ops := freeAddr(t), freeAddr(t)
	// The image's own entrypoint and command, with the listeners moved
	// to free loopback ports (a container has its own network).
	args := append(append(append([]string{}, cfg.Entrypoint...), cfg.Cmd...), "--sale", "s1=1", "--no-demo")
	gate := chroot(args...)
	gate.Env = append(gate.Env, "SLUICE_LISTEN="+api, "SLUICE_OPS_LISTEN="+ops)
	var logs bytes.Buffer
	gate.Stdout, gate.Stderr = &logs, &logs
	startUntilCleanup(t, gate, 30*time.Second)
	// Ready, by the image's own healthcheck command.
	hc := append(append([]string{}, inspect[0].Healthcheck.Test[1:]...), "--ops-listen", ops)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c := chroot(hc...)
		c.Env = append(c.Env, "SLUICE_OPS_LISTEN="+ops)
		if c.Run() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gate in the chroot never became ready:\n%s", logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	resp, err := http.Post("http://"+api+"/v1/sales/s1/orders", "application/json", strings.NewReader(`{"buyer_id":"alice"}`))
	if err != nil {
		t.Fatal(err)
	}
	var answer map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&answer)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || answer["order_id"] == nil {
		t.Fatalf("order in the chroot: %d %v\n%s", resp.StatusCode, answer, logs.String())
	}
	// The order is stored under /data, by the unprivileged user.
	if _, err := os.Stat(filepath.Join(root, "data", "jetstream")); err != nil {
		t.Fatalf("no JetStream store under the image's /data: %v", err)
	}
}

// startUntilCleanup starts cmd and, when the test ends, stops it with
// SIGTERM, killing it if it has not exited after grace.
func startUntilCleanup(t *testing.T, cmd *exec.Cmd, grace time.Duration) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(grace):
			_ = cmd.Process.Kill()
			<-done
		}
	})
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
