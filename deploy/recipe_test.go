package deploy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sluice/internal/testkit/gatetest"
	"sluice/internal/testkit/pgtest"
	"sluice/internal/testkit/testcert"
	"sluice/internal/testkit/testenv"
)

// The three-gate cluster recipe (deploy/cluster/g1.yaml, g2.yaml,
// g3.yaml), run as written on loopback by three sluice processes
// (sluice serve --config FILE): its addresses are rewritten to
// free 127.0.0.1 ports, its files under /etc/sluice and /var/lib/sluice
// to temporary ones (route certificates signed by a test CA), its
// PostgreSQL to a real one; the secrets come from the environment, as the
// recipe says. The three gates form a cluster over authenticated TLS
// routes, a sale made on one sells through each, and no gate logs an
// error while its peers start.
func TestClusterRecipeOnLoopback(t *testing.T) {
	testenv.Exclusive(t) // three replicated JetStream servers need the cores to settle
	pg := pgtest.Start(t)
	backend := pg.NewDatabase("shop")
	ca := testcert.NewCA(t)
	t.Logf("%v: PostgreSQL up", time.Now().Format(time.StampMilli))

	addrs := map[string]string{} // 10.0.0.N:PORT → 127.0.0.1:free
	addr := regexp.MustCompile(`10\.0\.0\.\d:\d+`)
	free := func(string) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	var confs [3]string
	var logs [3]*gatetest.Lines
	var api, ops, routes [3]string
	for i := range confs {
		raw, err := os.ReadFile(fmt.Sprintf("cluster/g%d.yaml", i+1))
		if err != nil {
			t.Fatal(err)
		}
		etc := t.TempDir()
		ca.Issue(t, fmt.Sprint("g", i+1), []string{"127.0.0.1"}, filepath.Join(etc, "route.pem"), filepath.Join(etc, "route-key.pem"))
		caPEM, _ := os.ReadFile(ca.File)
		if err := os.WriteFile(filepath.Join(etc, "route-ca.pem"), caPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		text := addr.ReplaceAllStringFunc(string(raw), func(a string) string {
			if addrs[a] == "" {
				addrs[a] = free(a)
			}
			return addrs[a]
		})
		text = strings.ReplaceAll(text, "/etc/sluice/", etc+"/")
		text = strings.ReplaceAll(text, "/var/lib/sluice", t.TempDir())
		text = regexp.MustCompile(`(?m)^backend: .*$`).ReplaceAllString(text, "backend: "+backend)
		if strings.Contains(text, "10.0.0.") {
			t.Fatalf("g%d.yaml: an address left unrewritten:\n%s", i+1, text)
		}
		n := fmt.Sprint(i + 1)
		api[i], ops[i], routes[i] = addrs["10.0.0."+n+":8080"], addrs["10.0.0."+n+":9464"], addrs["10.0.0."+n+":6222"]
		if api[i] == "" || ops[i] == "" || routes[i] == "" {
			t.Fatalf("g%d.yaml: want its listeners on 10.0.0.%s:8080, :9464 and :6222", i+1, n)
		}
		confs[i] = filepath.Join(etc, "sluice.yaml")
		if err := os.WriteFile(confs[i], []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		logs[i] = &gatetest.Lines{}
	}
	// The three start together, as the recipe says: JetStream waits for
	// a quorum. The secrets come from the environment.
	bin := sluiceBinary(t)
	for i := range confs {
		cmd := exec.Command(bin, "serve", "--config", confs[i])
		cmd.Env = append(os.Environ(), "SLUICE_CLUSTER_PASSWORD=a-route-password-for-tests", "SLUICE_ADMIN_TOKEN=admin-token-for-tests")
		cmd.Stdout, cmd.Stderr = logs[i], logs[i]
		startUntilCleanup(t, cmd, 40*time.Second)
	}
	c := gatetest.Client()
	for i := range confs {
		gatetest.Eventually(t, 90*time.Second, fmt.Sprintf("g%d to be ready", i+1), func() bool {
			resp, err := c.Get("http://" + ops[i] + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}
	t.Logf("%v: the three gates are ready", time.Now().Format(time.StampMilli))
	// What they logged while they started: the probes below are refused
	// at error level, as they should be.
	var started [3]string
	for i, l := range logs {
		started[i] = l.String()
	}
	// The route port wants TLS with a certificate the CA signed, and then
	// credentials: a plain connection, or a TLS one without a certificate,
	// gets no route; a signed one is asked to authenticate.
	peer := ca.Issue(t, "peer", []string{"127.0.0.1"}, "", "")
	pair, err := tls.LoadX509KeyPair(peer.CertFile, peer.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	for i := range routes {
		if info, err := routeInfo(routes[i], &tls.Config{RootCAs: ca.Pool()}); err == nil {
			t.Fatalf("g%d's route port let a TLS client without a certificate in: %s", i+1, info)
		}
		info, err := routeInfo(routes[i], &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{pair}})
		if err != nil || !strings.Contains(info, `"auth_required":true`) {
			t.Fatalf("g%d's route port, to a signed peer: %q (%v); want auth_required", i+1, info, err)
		}
	}

	t.Logf("%v: the route ports checked", time.Now().Format(time.StampMilli))
	if a := gatetest.Admin(t, c, ops[0], "PUT", "/admin/sales/recipe", "admin-token-for-tests", `{"stock":3}`); a.Status != http.StatusCreated {
		t.Fatalf("create the sale on g1: %d %s", a.Status, a.Raw)
	}
	for _, a := range api {
		gatetest.Eventually(t, 20*time.Second, "every gate to know the sale", func() bool {
			return gatetest.Get(t, c, "http://"+a+"/v1/sales/recipe").Status == http.StatusOK
		})
	}
	var ids []string
	for i, g := range api {
		a := gatetest.Order(t, c, "http://"+g, "recipe", fmt.Sprint("buyer-", i+1), "")
		if a.Status != http.StatusAccepted {
			t.Fatalf("order through g%d: %d %s", i+1, a.Status, a.Raw)
		}
		ids = append(ids, a.Str("order_id"))
	}
	for i, g := range api {
		if a := gatetest.Order(t, c, "http://"+g, "recipe", fmt.Sprint("late-", i+1), ""); a.Status != http.StatusGone {
			t.Fatalf("order past the stock through g%d: %d %s", i+1, a.Status, a.Raw)
		}
	}
	// Every order reaches the one PostgreSQL, confirmed, and every gate
	// says so.
	for _, id := range ids {
		for i, g := range api {
			gatetest.Eventually(t, 30*time.Second, fmt.Sprintf("order %s confirmed on g%d", id, i+1), func() bool {
				return gatetest.Get(t, c, "http://"+g+"/v1/orders/"+id).Str("status") == "confirmed"
			})
		}
	}
	t.Logf("%v: every order confirmed on every gate", time.Now().Format(time.StampMilli))
	for i, l := range started {
		if n := strings.Count(l, "level=ERROR"); n > 0 {
			t.Errorf("g%d logged %d errors while its peers started:\n%s", i+1, n, l)
		}
		if n := strings.Count(l, "cluster peer not reachable yet"); n > 1 {
			t.Errorf("g%d logged the unreachable peer %d times at info; want once at most", i+1, n)
		}
	}
}

// routeInfo reads the INFO line a NATS route port sends first, over TLS
// (with tc) from the first byte: nats-server's routes with TLS handshake
// first.
func routeInfo(addr string, tc *tls.Config) (string, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, tc)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	return bufio.NewReader(conn).ReadString('\n')
}
