package serve

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"sluice/consumer"
	"sluice/consumer/httpbackend"
	"sluice/consumer/postgres"
	"sluice/consumer/sqlite"
)

// backendKind is one kind of backend a --backend value names. A new kind
// is a package implementing consumer.Backend and one row of backendKinds.
// The table is here, with the wiring, rather than in internal/drain: the
// drain takes any consumer.Backend and needs no kind's driver, and
// Config.Check, which reads --backend without opening it, is here too.
type backendKind struct {
	// form is how a value of this kind is written, for the error that
	// says what --backend takes.
	form string
	// names says whether a --backend value is of this kind.
	names func(spec string) bool
	// check refuses what open would refuse for the value's form, without
	// opening a file or dialling anything (Config.Check).
	check func(spec string) error
	// open opens the backend; db is its database handle when it has one,
	// for the pool's metrics.
	open func(ctx context.Context, spec string, o backendOptions) (b consumer.Backend, db *sql.DB, err error)
}

// backendOptions are the settings other than --backend a backend is
// opened with.
type backendOptions struct {
	dataDir     string        // holds the default SQLite file
	workers     int           // the drain's --workers: a pool's connections, an endpoint's calls at once
	callTimeout time.Duration // bounds one call to a purchase endpoint
}

// backendKinds is what --backend takes, in the order a value is tried:
//
//	""                          SQLite at <data-dir>/orders.db
//	sqlite:PATH, PATH.db        a SQLite file
//	postgres://… postgresql://… PostgreSQL
//	http://… https://…          an existing purchase endpoint
func backendKinds() []backendKind {
	return []backendKind{
		{
			form: "a SQLite path",
			names: func(spec string) bool {
				return spec == "" || hasPrefix(spec, "sqlite:") || hasSuffix(spec, ".db", ".sqlite")
			},
			check: func(spec string) error {
				if spec != "" && sqlitePath(spec, "") == "" {
					return fmt.Errorf("%q: want a SQLite file's path", spec)
				}
				return nil
			},
			open: openSQLite,
		},
		{
			form:  "postgres://…",
			names: func(spec string) bool { return hasPrefix(spec, "postgres://", "postgresql://") },
			check: func(spec string) error {
				if _, err := pgx.ParseConfig(spec); err != nil {
					return fmt.Errorf("postgres: %w", err)
				}
				return nil
			},
			open: func(ctx context.Context, spec string, o backendOptions) (consumer.Backend, *sql.DB, error) {
				b, err := postgres.Open(ctx, spec, o.workers)
				if err != nil {
					return nil, nil, err
				}
				return b, b.DB(), nil
			},
		},
		{
			form:  "http(s)://…",
			names: func(spec string) bool { return hasPrefix(spec, "http://", "https://") },
			check: func(spec string) error {
				_, err := httpbackend.New(httpbackend.Config{URL: spec})
				return err
			},
			open: func(_ context.Context, spec string, o backendOptions) (consumer.Backend, *sql.DB, error) {
				b, err := httpbackend.New(httpbackend.Config{URL: spec, Concurrency: o.workers, Timeout: o.callTimeout})
				if err != nil {
					return nil, nil, err
				}
				return b, nil, nil
			},
		},
	}
}

// backendKindOf is the kind a --backend value names.
func backendKindOf(spec string) (backendKind, error) {
	kinds := backendKinds()
	forms := make([]string, len(kinds))
	for i, k := range kinds {
		if k.names(spec) {
			return k, nil
		}
		forms[i] = k.form
	}
	last := len(forms) - 1
	return backendKind{}, fmt.Errorf("%q: want %s or %s", spec, strings.Join(forms[:last], ", "), forms[last])
}

// checkBackend refuses a --backend value Start would refuse for its
// form; nothing is opened or dialled.
func checkBackend(spec string) error {
	k, err := backendKindOf(spec)
	if err != nil {
		return err
	}
	return k.check(spec)
}

// openBackend opens the backend a --backend value names (backendKinds).
// It returns the database handle too when there is one, for pool metrics.
func openBackend(ctx context.Context, spec string, o backendOptions) (consumer.Backend, *sql.DB, error) {
	k, err := backendKindOf(spec)
	if err != nil {
		return nil, nil, settingErr("backend", err)
	}
	return k.open(ctx, spec, o)
}

// sqlitePath is the file a SQLite --backend value names: sqlite:PATH,
// sqlite://PATH or PATH, and for "" orders.db in dataDir.
func sqlitePath(spec, dataDir string) string {
	if spec == "" {
		return filepath.Join(dataDir, "orders.db")
	}
	return strings.TrimPrefix(strings.TrimPrefix(spec, "sqlite:"), "//")
}

func openSQLite(ctx context.Context, spec string, o backendOptions) (consumer.Backend, *sql.DB, error) {
	path := sqlitePath(spec, o.dataDir)
	// The file's directory is made if need be: the default one, the data
	// directory, has no JetStream store to make it in a drain beside an
	// external NATS.
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, nil, fmt.Errorf("sqlite: %w", err)
	}
	b, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	return b, b.DB(), nil
}

func hasPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func hasSuffix(s string, suffixes ...string) bool {
	for _, x := range suffixes {
		if strings.HasSuffix(s, x) {
			return true
		}
	}
	return false
}
