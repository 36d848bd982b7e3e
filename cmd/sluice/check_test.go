package main

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
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// runBinary runs the built sluice in dir with args and env added to an
// environment without any SLUICE_ variable of the test's own.
func runBinary(t *testing.T, dir string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLUICE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("sluice %s: still running after 20 s (--check must start nothing)", strings.Join(args, " "))
	}
	return code, o.String(), e.String()
}

// selfSigned writes a certificate and its key (PEM) for 127.0.0.1 into
// dir; the certificate is its own CA, so it serves as a route CA too.
func selfSigned(t *testing.T, dir, name string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	writeFile(t, cert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, key, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})))
	return cert, key
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// setting is one flag's value in a case.
type setting struct{ name, value string }

// form is one way of giving settings: on the command line with a space
// or an equals sign, in the environment, in the config file.
type form string

const (
	formFlag   form = "--flag value"
	formEquals form = "--flag=value"
	formEnv    form = "SLUICE_FLAG"
	formFile   form = "config file"
)

var forms = []form{formFlag, formEquals, formEnv, formFile}

// give turns settings into the arguments, environment and config file
// (written into dir) of form f.
func (f form) give(t *testing.T, dir string, settings []setting) (args, env []string) {
	t.Helper()
	var yaml strings.Builder
	for _, s := range settings {
		key := strings.ReplaceAll(s.name, "-", "_")
		switch f {
		case formFlag:
			if s.value == "true" { // a bool flag takes no separate value
				args = append(args, "--"+s.name)
			} else {
				args = append(args, "--"+s.name, s.value)
			}
		case formEquals:
			args = append(args, "--"+s.name+"="+s.value)
		case formEnv:
			env = append(env, "SLUICE_"+strings.ToUpper(key)+"="+s.value)
		case formFile:
			fmt.Fprintf(&yaml, "%s: %q\n", key, s.value)
		}
	}
	if f == formFile {
		file := filepath.Join(dir, "sluice.yaml")
		writeFile(t, file, yaml.String())
		args = append(args, "--config", file)
	}
	return args, env
}

// label is how sluice names a setting given in form f.
func (f form) label(name string) string {
	switch f {
	case formEnv:
		return "SLUICE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + ":"
	case formFile:
		return strings.ReplaceAll(name, "-", "_") + " in "
	}
	return "--" + name + ":"
}

// TestBuyerHeaderWithTrustedProxies is issue 27's door that never opened:
// --buyer-header with --trusted-proxies was refused in every form, by a
// check that ran before --trusted-proxies was parsed and named
// --cors-origin. Through the built binary: --check in every form, and a
// gate that starts and takes the buyer from the header.
func TestBuyerHeaderWithTrustedProxies(t *testing.T) {
	for _, proxies := range []string{"10.1.2.3", "10.0.0.0/8", "127.0.0.1", "127.0.0.1,10.0.0.0/8"} {
		for _, f := range forms {
			t.Run(proxies+"/"+string(f), func(t *testing.T) {
				dir := t.TempDir()
				args, env := f.give(t, dir, []setting{{"buyer-header", "X-User-Id"}, {"trusted-proxies", proxies}})
				code, out, errOut := runBinary(t, dir, env, append([]string{"serve", "--check"}, args...)...)
				if code != 0 || !strings.HasPrefix(out, "sluice: configuration OK (") {
					t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
				}
			})
		}
	}
	g := startServe(t, "--data-dir", t.TempDir(), "--buyer-header", "X-User-Id", "--trusted-proxies", "127.0.0.1", "--sale", "hdr=5")
	for _, c := range []struct {
		header string
		want   int
	}{{"alice", http.StatusAccepted}, {"alice", http.StatusConflict}, {"", http.StatusBadRequest}} {
		req, _ := http.NewRequest("POST", "http://"+g.api+"/v1/sales/hdr/orders", strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		if c.header != "" {
			req.Header.Set("X-User-Id", c.header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("X-User-Id %q: %d %s, want %d", c.header, resp.StatusCode, body, c.want)
		}
	}
}

// TestCheckSettingsThatNeedAnother: every setting that depends on
// another, in every form a setting can be given (--flag value,
// --flag=value, SLUICE_FLAG, the config file), through the built binary
// with --check: without its partner (or with a contradicting one) it is
// refused, and the error names the setting as it was given; with it,
// the configuration is OK. Nothing may be started: a gate would not
// exit, and runBinary fails a process that runs for 20 s.
func TestCheckSettingsThatNeedAnother(t *testing.T) {
	files := t.TempDir()
	cert, key := selfSigned(t, files, "gate")
	secret := filepath.Join(files, "secret")
	writeFile(t, secret, strings.Repeat("k", 40)+"\n")
	token := filepath.Join(files, "token")
	writeFile(t, token, "t0ken\n")
	cluster := []setting{{"cluster-listen", "127.0.0.1:16222"}, {"server-name", "g1"}}
	jwks := setting{"buyer-token-jwks", "https://shop.example/.well-known/jwks.json"}
	for _, c := range []struct {
		name      string
		role      string    // serve unless drain
		base      []setting // given in both runs
		bad       []setting // refused, naming want
		want      string    // the setting the error names
		good      []setting // accepted with base
		wantWords string    // also in the error
	}{
		{name: "buyer-header needs trusted-proxies", bad: []setting{{"buyer-header", "X-User-Id"}}, want: "buyer-header", wantWords: "needs --trusted-proxies",
			good: []setting{{"buyer-header", "X-User-Id"}, {"trusted-proxies", "10.1.2.3"}}},
		{name: "buyer-header or a token", bad: []setting{{"buyer-header", "X-User-Id"}, {"trusted-proxies", "10.1.2.3"}, jwks}, want: "buyer-header", wantWords: "not both",
			good: []setting{jwks}},
		{name: "tls-cert needs tls-key", bad: []setting{{"tls-cert", cert}}, want: "tls-cert", wantWords: "needs --tls-key",
			good: []setting{{"tls-cert", cert}, {"tls-key", key}}},
		{name: "tls-key needs tls-cert", bad: []setting{{"tls-key", key}}, want: "tls-key", wantWords: "needs --tls-cert",
			good: []setting{{"tls-cert", cert}, {"tls-key", key}}},
		{name: "cluster-user needs cluster-password", base: cluster, bad: []setting{{"cluster-user", "route"}}, want: "cluster-user", wantWords: "needs --cluster-password",
			good: []setting{{"cluster-user", "route"}, {"cluster-password", "pw"}}},
		{name: "cluster-password needs cluster-user", base: cluster, bad: []setting{{"cluster-password", "pw"}}, want: "cluster-password", wantWords: "needs --cluster-user",
			good: []setting{{"cluster-user", "route"}, {"cluster-password", "pw"}}},
		{name: "cluster TLS trio", base: cluster, bad: []setting{{"cluster-tls-cert", cert}, {"cluster-tls-key", key}}, want: "cluster-tls-cert", wantWords: "needs --cluster-tls-ca",
			good: []setting{{"cluster-tls-cert", cert}, {"cluster-tls-key", key}, {"cluster-tls-ca", cert}}},
		{name: "cluster settings need cluster-listen", bad: []setting{{"cluster-routes", "nats://10.0.0.2:6222"}}, want: "cluster-routes", wantWords: "needs --cluster-listen",
			good: append([]setting{{"cluster-routes", "nats://10.0.0.2:6222"}}, cluster...)},
		{name: "cluster-listen needs server-name", bad: []setting{{"cluster-listen", "127.0.0.1:16222"}}, want: "cluster-listen", wantWords: "needs --server-name",
			good: cluster},
		{name: "replicas need a cluster", bad: []setting{{"replicas", "3"}}, want: "replicas", wantWords: "needs a cluster",
			good: append([]setting{{"replicas", "3"}}, cluster...)},
		{name: "buyer-token-cookie needs a key", bad: []setting{{"buyer-token-cookie", "shop_session"}}, want: "buyer-token-cookie", wantWords: "needs --buyer-token-jwks",
			good: []setting{{"buyer-token-cookie", "shop_session"}, {"buyer-token-secret-file", secret}}},
		{name: "buyer-token-issuer needs a key", bad: []setting{{"buyer-token-issuer", "https://shop.example"}}, want: "buyer-token-issuer", wantWords: "needs --buyer-token-jwks",
			good: []setting{{"buyer-token-issuer", "https://shop.example"}, jwks}},
		{name: "buyer-token-audience needs a key", bad: []setting{{"buyer-token-audience", "gate"}}, want: "buyer-token-audience", wantWords: "needs --buyer-token-jwks",
			good: []setting{{"buyer-token-audience", "gate"}, jwks}},
		{name: "buyer-token jwks or secret", bad: []setting{jwks, {"buyer-token-secret-file", secret}}, want: "buyer-token-jwks", wantWords: "not both",
			good: []setting{{"buyer-token-secret-file", secret}}},
		{name: "cors-credentials needs cors-origin", bad: []setting{{"cors-credentials", "true"}}, want: "cors-credentials", wantWords: "needs --cors-origin",
			good: []setting{{"cors-credentials", "true"}, {"cors-origin", "https://shop.example"}}},
		{name: "sync-interval needs sync interval", bad: []setting{{"sync", "always"}, {"sync-interval", "1s"}}, want: "sync-interval", wantWords: "needs --sync interval",
			good: []setting{{"sync", "interval"}, {"sync-interval", "1s"}}},
		{name: "gc-headroom needs gc-percent above 100", bad: []setting{{"gc-percent", "100"}, {"gc-headroom", "64MiB"}}, want: "gc-headroom", wantWords: "needs --gc-percent above 100",
			good: []setting{{"gc-percent", "400"}, {"gc-headroom", "64MiB"}}},
		{name: "gc-percent off needs memory-limit", bad: []setting{{"gc-percent", "-1"}}, want: "gc-percent", wantWords: "give --memory-limit",
			good: []setting{{"gc-percent", "-1"}, {"memory-limit", "2GiB"}}},
		{name: "admin-token or its file", bad: []setting{{"admin-token", "x"}, {"admin-token-file", token}}, want: "admin-token-file", wantWords: "give one",
			good: []setting{{"admin-token-file", token}}},
		{name: "nats-url embeds no server", bad: []setting{{"nats-url", "nats://127.0.0.1:4222"}, {"nats-listen", "127.0.0.1:4223"}}, want: "nats-listen", wantWords: "--nats-url",
			good: []setting{{"nats-url", "nats://127.0.0.1:4222"}}},
		{name: "drain needs nats-url", role: "drain", bad: []setting{{"workers", "2"}}, want: "nats-url", wantWords: "required",
			good: []setting{{"workers", "2"}, {"nats-url", "nats://127.0.0.1:4222"}}},
		{name: "drain backend", role: "drain", base: []setting{{"nats-url", "nats://127.0.0.1:4222"}}, bad: []setting{{"backend", "mysql://db/shop"}}, want: "backend", wantWords: "want a SQLite path",
			good: []setting{{"backend", "postgres://sluice@db/shop"}}},
	} {
		role := c.role
		if role == "" {
			role = "serve"
		}
		for _, f := range forms {
			t.Run(c.name+"/"+string(f), func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				args, env := f.give(t, dir, append(append([]setting{}, c.base...), c.bad...))
				code, out, errOut := runBinary(t, dir, env, append([]string{role, "--check"}, args...)...)
				label := f.label(c.want)
				if !slices.ContainsFunc(c.bad, func(s setting) bool { return s.name == c.want }) {
					label = "--" + c.want + ":" // a setting missing is named by its flag
				}
				if code == 0 || !strings.Contains(errOut, label) || !strings.Contains(errOut, c.wantWords) {
					t.Errorf("%v %v: exit %d, stdout %q, stderr %q; want an error naming %q that says %q", env, args, code, out, errOut, label, c.wantWords)
				}
				args, env = f.give(t, dir, append(append([]setting{}, c.base...), c.good...))
				code, out, errOut = runBinary(t, dir, env, append([]string{role, "--check"}, args...)...)
				if code != 0 || !strings.HasPrefix(out, "sluice: configuration OK (") || errOut != "" {
					t.Errorf("%v %v: exit %d, stdout %q, stderr %q; want OK", env, args, code, out, errOut)
				}
				if entries, _ := os.ReadDir(dir); len(entries) > 1 {
					t.Errorf("--check wrote into its directory: %v", entries)
				}
			})
		}
	}
}

// The admin token from a file, for the gate and for its clients, and the
// clients finding the gate by the gate's own SLUICE_OPS_LISTEN: through
// the built binary, as an operator's shell or unit runs them.
func TestAdminTokenFileAndOpsListen(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	writeFile(t, token, "s3cret\n")
	g := startServe(t, "--data-dir", t.TempDir(), "--admin-token-file", token, "--sale", "tok=5")
	ops := []string{"SLUICE_OPS_LISTEN=" + g.ops}
	for _, c := range []struct {
		name string
		env  []string
		args []string
		want int
		says string
	}{
		{"file from the environment", []string{"SLUICE_ADMIN_TOKEN_FILE=" + token}, []string{"sale", "show", "tok"}, 0, "tok"},
		{"file flag", nil, []string{"sale", "list", "--admin-token-file", token}, 0, "tok"},
		{"file flag beats a wrong SLUICE_ADMIN_TOKEN", []string{"SLUICE_ADMIN_TOKEN=wrong"}, []string{"sale", "list", "--admin-token-file", token}, 0, "tok"},
		{"the token as the file holds it, less the newline", []string{"SLUICE_ADMIN_TOKEN=s3cret"}, []string{"sale", "list"}, 0, "tok"},
		{"both variables", []string{"SLUICE_ADMIN_TOKEN=s3cret", "SLUICE_ADMIN_TOKEN_FILE=" + token}, []string{"sale", "list"}, 2, "give one"},
		{"empty file", []string{"SLUICE_ADMIN_TOKEN_FILE=" + filepath.Join(dir, "empty")}, []string{"sale", "list"}, 2, "is empty"},
		{"missing file", nil, []string{"sale", "list", "--admin-token-file", filepath.Join(dir, "none")}, 2, "no such file"},
		{"status", nil, []string{"status"}, 0, "tok"},
		{"SLUICE_OPS beats the gate's variable", []string{"SLUICE_OPS=http://" + g.ops, "SLUICE_OPS_LISTEN=127.0.0.1:1"}, []string{"status"}, 0, "tok"},
		{"--ops beats both", []string{"SLUICE_OPS=127.0.0.1:1", "SLUICE_ADMIN_TOKEN=s3cret"}, []string{"sale", "list", "--ops", g.ops}, 0, "tok"},
	} {
		t.Run(c.name, func(t *testing.T) {
			writeFile(t, filepath.Join(dir, "empty"), "\n")
			env := append([]string{}, ops...)
			if slices.ContainsFunc(c.env, func(e string) bool { return strings.HasPrefix(e, "SLUICE_OPS_LISTEN=") }) {
				env = nil
			}
			code, out, errOut := runBinary(t, dir, append(env, c.env...), c.args...)
			if code != c.want || !strings.Contains(out+errOut, c.says) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d saying %q", code, out, errOut, c.want, c.says)
			}
		})
	}
	// The gate refuses an empty token file, and a token given twice.
	for _, args := range [][]string{
		{"--admin-token-file", filepath.Join(dir, "empty")},
		{"--admin-token-file", token, "--admin-token", "x"},
	} {
		code, _, errOut := runBinary(t, dir, nil, append([]string{"serve", "--check"}, args...)...)
		if code == 0 || !strings.Contains(errOut, "--admin-token-file:") {
			t.Errorf("serve %v: exit %d, %q", args, code, errOut)
		}
	}
}

// A drain beside a gate, sharing its environment or config file, does
// not take the gate's ops port: it reads SLUICE_DRAIN_OPS_LISTEN and
// drain_ops_listen, never SLUICE_OPS_LISTEN or ops_listen (the gate
// holds that port, and the drain failed to bind it).
func TestDrainOpsListenIsNotTheGates(t *testing.T) {
	dir := t.TempDir()
	shared := filepath.Join(dir, "shared.yaml")
	writeFile(t, shared, "ops_listen: 127.0.0.1:7464\ndrain_ops_listen: 127.0.0.1:7465\nnats_url: nats://127.0.0.1:4222\n")
	for _, c := range []struct {
		name string
		role string
		env  []string
		args []string
		ops  string
	}{
		{"drain ignores the gate's variable", "drain", []string{"SLUICE_OPS_LISTEN=127.0.0.1:7464"}, []string{"--nats-url", "nats://127.0.0.1:4222"}, "ops 127.0.0.1:9465"},
		{"drain reads its own variable", "drain", []string{"SLUICE_OPS_LISTEN=127.0.0.1:7464", "SLUICE_DRAIN_OPS_LISTEN=127.0.0.1:7466"}, []string{"--nats-url", "nats://127.0.0.1:4222"}, "ops 127.0.0.1:7466"},
		{"drain reads its own key", "drain", nil, []string{"--config", shared}, "ops 127.0.0.1:7465"},
		{"drain's flag", "drain", []string{"SLUICE_DRAIN_OPS_LISTEN=127.0.0.1:7466"}, []string{"--nats-url", "nats://127.0.0.1:4222", "--ops-listen", "127.0.0.1:7467"}, "ops 127.0.0.1:7467"},
		{"SLUICE_CONFIG names the file", "drain", []string{"SLUICE_CONFIG=" + shared}, nil, "ops 127.0.0.1:7465"},
		{"gate reads its key and ignores the drain's", "serve", []string{"SLUICE_DRAIN_OPS_LISTEN=127.0.0.1:7466"}, []string{"--config", shared, "--nats-url=", "--no-drain"}, "ops 127.0.0.1:7464"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runBinary(t, dir, c.env, append([]string{c.role, "--check"}, c.args...)...)
			if code != 0 || !strings.Contains(out, c.ops+",") {
				t.Errorf("exit %d, stdout %q, stderr %q; want %q", code, out, errOut, c.ops)
			}
		})
	}
}

// --check refuses what serve would refuse at start and can be known
// without starting, each error naming its setting once (no "serve:
// serve:" or "tls: tls:"); it binds no port (one held by another
// process does not fail it) and writes nothing (no data directory).
func TestCheckRefusesWhatStartRefuses(t *testing.T) {
	files := t.TempDir()
	cert, key := selfSigned(t, files, "gate")
	_, otherKey := selfSigned(t, files, "other")
	short := filepath.Join(files, "short")
	writeFile(t, short, "too short\n")
	secret := filepath.Join(files, "secret")
	writeFile(t, secret, strings.Repeat("s", 32)+"\n")
	pages := filepath.Join(files, "pages")
	if err := os.Mkdir(pages, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(pages, "problem.html"), "{{ .Nope ")
	badSchema := filepath.Join(files, "bad-schema.yaml")
	writeFile(t, badSchema, "sales:\n  - name: s1\n    stock: 5\n    payload_schema: {\"type\": \"nope\"}\n")
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	for _, c := range []struct {
		args []string
		says string // "" for OK
	}{
		{[]string{"--tls-cert", cert, "--tls-key", otherKey}, "--tls-cert: "},
		{[]string{"--tls-cert", cert, "--tls-key", filepath.Join(files, "none")}, "no such file"},
		{[]string{"--pages", pages}, "--pages: "},
		{[]string{"--pages", filepath.Join(files, "none")}, "--pages: "},
		{[]string{"--sold-out-page", filepath.Join(files, "none")}, "--sold-out-page: "},
		{[]string{"--buyer-token-secret-file", short}, "needs 32 or more"},
		{[]string{"--buyer-token-secret-file", filepath.Join(files, "none")}, "--buyer-token-secret-file: "},
		{[]string{"--buyer-token-jwks", "shop.example/jwks.json"}, "--buyer-token-jwks: "},
		{[]string{"--backend", "postgres://u@db:port/shop"}, "--backend: "},
		{[]string{"--backend", "https://"}, "--backend: "},
		{[]string{"--cluster-listen", "127.0.0.1:16222", "--server-name", "g1", "--cluster-tls-cert", cert, "--cluster-tls-key", key, "--cluster-tls-ca", filepath.Join(files, "none")}, "--cluster-tls-cert: "},
		{[]string{"--config", badSchema}, "payload_schema"},
		{[]string{"--sale", "s1=0"}, "--sale: "},
		{[]string{"--listen", "8080"}, "--listen: "},
		{[]string{"--ops-listen", "127.0.0.1:99999"}, "--ops-listen: "},
		{[]string{"--nats-listen", "localhost"}, "--nats-listen: "},
		{[]string{"--sync", "sometimes"}, "--sync: "},
		{[]string{"--replicas", "7", "--nats-url", "nats://127.0.0.1:4222"}, "--replicas: "},
		{[]string{"--tls-cert", cert, "--tls-key", key, "--buyer-token-secret-file", secret}, ""},
		{[]string{"--listen", held.Addr().String()}, ""},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			dir := t.TempDir()
			code, out, errOut := runBinary(t, dir, nil, append([]string{"serve", "--check"}, c.args...)...)
			switch {
			case c.says == "" && (code != 0 || !strings.HasPrefix(out, "sluice: configuration OK (")):
				t.Errorf("exit %d, stdout %q, stderr %q; want OK", code, out, errOut)
			case c.says != "" && (code == 0 || !strings.Contains(errOut, c.says)):
				t.Errorf("exit %d, stdout %q, stderr %q; want an error saying %q", code, out, errOut, c.says)
			}
			if d := doubled(errOut); d != "" {
				t.Errorf("%q said twice in %q", d, errOut)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("--check wrote %v", entries)
			}
		})
	}
}

// doubled is a prefix an error message repeats ("serve: serve: "), or "".
func doubled(msg string) string {
	for line := range strings.SplitSeq(msg, "\n") {
		parts := strings.Split(line, ": ")
		for i := 1; i < len(parts); i++ {
			if f := strings.Fields(parts[i]); len(f) > 0 && f[0] == parts[i-1] {
				return parts[i-1] + ": " + parts[i]
			}
		}
	}
	return ""
}

// cors_origins, the config file's list, is the partner of
// cors_credentials as the repeated --cors-origin is of the flag.
func TestCheckCORSOriginsList(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		yaml, says string
	}{
		{"cors_credentials: true\n", "cors_credentials in "},
		{"cors_credentials: true\ncors_origins: [https://shop.example, https://www.shop.example]\n", ""},
		{"cors_origins: [\"*\"]\n", "cors_origins in "},
	} {
		file := filepath.Join(dir, "sluice.yaml")
		writeFile(t, file, c.yaml)
		code, out, errOut := runBinary(t, dir, nil, "serve", "--check", "--config", file)
		if c.says == "" && (code != 0 || !strings.HasPrefix(out, "sluice: configuration OK")) || c.says != "" && (code == 0 || !strings.Contains(errOut, c.says)) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %q", c.yaml, code, out, errOut, c.says)
		}
	}
}
