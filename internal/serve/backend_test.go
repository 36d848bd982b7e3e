package serve

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every form of --backend is named by exactly one row of the table, and
// Check refuses by the same table what opening would refuse for its form.
func TestBackendKinds(t *testing.T) {
	for _, tc := range []struct {
		spec string
		form string // of the row that names it; "" for none
		bad  string // in Check's error, if it refuses it
	}{
		{"", "a SQLite path", ""},
		{"orders.db", "a SQLite path", ""},
		{"/var/lib/sluice/orders.sqlite", "a SQLite path", ""},
		{"sqlite:orders", "a SQLite path", ""},
		{"sqlite://orders", "a SQLite path", ""},
		{"sqlite:", "a SQLite path", "want a SQLite file's path"},
		{"postgres://sluice@db/shop", "postgres://…", ""},
		{"postgresql://sluice@db:5432/shop", "postgres://…", ""},
		{"postgres://sluice@db:port/shop", "postgres://…", "postgres: "},
		{"http://shop.example/v1/purchase", "http(s)://…", ""},
		{"https://shop.example/v1/purchase", "http(s)://…", ""},
		{"https://", "http(s)://…", "bad URL"},
		{"mysql://db/shop", "", `"mysql://db/shop": want a SQLite path, postgres://… or http(s)://…`},
	} {
		var forms []string
		for _, k := range backendKinds() {
			if k.names(tc.spec) {
				forms = append(forms, k.form)
			}
		}
		switch {
		case tc.form == "" && len(forms) > 0, tc.form != "" && (len(forms) != 1 || forms[0] != tc.form):
			t.Errorf("%q is named by %q, want %q", tc.spec, forms, tc.form)
		}
		err := checkBackend(tc.spec)
		if (err != nil) != (tc.bad != "") || (err != nil && !strings.Contains(err.Error(), tc.bad)) {
			t.Errorf("checkBackend(%q) = %v, want an error with %q", tc.spec, err, tc.bad)
		}
	}
}

// The SQLite backend opens in one way whether named or by default: the
// file's directory made, the file described by its absolute path. A value
// of no kind is a setting error.
func TestOpenBackendSQLite(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ spec, path string }{
		{"", filepath.Join(dir, "data", "orders.db")},
		{"sqlite:" + filepath.Join(dir, "sub", "a.db"), filepath.Join(dir, "sub", "a.db")},
		{filepath.Join(dir, "other", "b.sqlite"), filepath.Join(dir, "other", "b.sqlite")},
	} {
		b, db, err := openBackend(context.Background(), tc.spec, backendOptions{dataDir: filepath.Join(dir, "data"), workers: 2})
		if err != nil {
			t.Fatalf("%q: %v", tc.spec, err)
		}
		if db == nil || b.Describe() != "sqlite:"+tc.path {
			t.Errorf("%q: db %v, described as %q, want sqlite:%s", tc.spec, db, b.Describe(), tc.path)
		}
		b.Close()
		if _, err := os.Stat(tc.path); err != nil {
			t.Errorf("%q: %v", tc.spec, err)
		}
	}
	_, _, err := openBackend(context.Background(), "mysql://db/shop", backendOptions{})
	var se *SettingError
	if !errors.As(err, &se) || se.Setting != "backend" {
		t.Fatalf("mysql: %v, want a SettingError for backend", err)
	}
}
