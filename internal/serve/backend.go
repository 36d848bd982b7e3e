package serve

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sluice/consumer"
	"sluice/consumer/httpbackend"
	"sluice/consumer/postgres"
	"sluice/consumer/sqlite"
)

// openBackend opens the backend a --backend value names:
//
//	""                          SQLite at <data-dir>/orders.db
//	sqlite:PATH, PATH.db        a SQLite file
//	postgres://… postgresql://… PostgreSQL
//	http://… https://…          an existing purchase endpoint
//
// callTimeout bounds one call to a purchase endpoint. It returns the
// database handle too when there is one, for pool metrics.
func openBackend(ctx context.Context, spec, dataDir string, workers int, callTimeout time.Duration) (consumer.Backend, *sql.DB, error) {
	switch {
	case spec == "":
		path := filepath.Join(dataDir, "orders.db")
		// A drain beside an external NATS has no JetStream store to make
		// the data directory; the database needs it all the same.
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return nil, nil, fmt.Errorf("sqlite: %w", err)
		}
		b, err := sqlite.Open(ctx, path)
		if err != nil {
			return nil, nil, err
		}
		return b, b.DB(), nil
	case strings.HasPrefix(spec, "sqlite:"), strings.HasSuffix(spec, ".db"), strings.HasSuffix(spec, ".sqlite"):
		path := strings.TrimPrefix(strings.TrimPrefix(spec, "sqlite:"), "//")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, nil, fmt.Errorf("sqlite: %w", err)
		}
		b, err := sqlite.Open(ctx, path)
		if err != nil {
			return nil, nil, err
		}
		return b, b.DB(), nil
	case strings.HasPrefix(spec, "postgres://"), strings.HasPrefix(spec, "postgresql://"):
		b, err := postgres.Open(ctx, spec, workers)
		if err != nil {
			return nil, nil, err
		}
		return b, b.DB(), nil
	case strings.HasPrefix(spec, "http://"), strings.HasPrefix(spec, "https://"):
		b, err := httpbackend.New(httpbackend.Config{URL: spec, Concurrency: workers, Timeout: callTimeout})
		if err != nil {
			return nil, nil, err
		}
		return b, nil, nil
	}
	return nil, nil, fmt.Errorf("--backend %q: want a SQLite path, postgres://… or http(s)://…", spec)
}
