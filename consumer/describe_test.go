package consumer_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sluice/consumer/httpbackend"
	"sluice/consumer/postgres"
	"sluice/consumer/sqlite"
	"sluice/internal/testkit/pgtest"
)

// Each backend describes where its orders go, the same way however it
// was named, and without what grants access to it: the description is
// written into JetStream and into logs.
func TestBackendsDescribeWithoutSecrets(t *testing.T) {
	ctx := context.Background()
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		t.Chdir(dir)
		be, err := sqlite.Open(ctx, "orders.db")
		if err != nil {
			t.Fatal(err)
		}
		defer be.Close()
		// Getwd rather than dir: a temporary directory may be reached
		// through a symlink, and the description keeps the name given.
		wd, _ := os.Getwd()
		if got, want := be.Describe(), "sqlite:"+filepath.Join(wd, "orders.db"); got != want {
			t.Fatalf("Describe %q, want %q", got, want)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.Start(t).NewDatabase("describe")
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		// A password the test server's trust authentication ignores,
		// and a parameter that is not where the orders go.
		u.User = url.UserPassword(u.User.Username(), "hunter2")
		q := u.Query()
		q.Set("application_name", "sluice-secret-app")
		u.RawQuery = q.Encode()
		be, err := postgres.Open(ctx, u.String(), 2)
		if err != nil {
			t.Fatal(err)
		}
		defer be.Close()
		got := be.Describe()
		if want := "postgres://" + u.Host + "/describe"; got != want {
			t.Fatalf("Describe %q, want %q", got, want)
		}
		for _, secret := range []string{"hunter2", "postgres@", "sluice-secret-app", "sslmode"} {
			if strings.Contains(got, secret) {
				t.Fatalf("Describe %q shows %q", got, secret)
			}
		}
	})
	t.Run("http", func(t *testing.T) {
		be, err := httpbackend.New(httpbackend.Config{URL: "https://shop:hunter2@shop.example:8443/v1/purchase?token=abc#x"})
		if err != nil {
			t.Fatal(err)
		}
		defer be.Close()
		if got, want := be.Describe(), "https://shop.example:8443/v1/purchase"; got != want {
			t.Fatalf("Describe %q, want %q", got, want)
		}
	})
}
