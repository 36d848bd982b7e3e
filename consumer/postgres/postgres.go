// Package postgres is the PostgreSQL order backend (jackc/pgx/v5): the
// same schema and guarantees as the SQLite backend, each batch one
// transaction whose per-order decisions are pipelined in one round trip.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"sluice/consumer"
	"sluice/internal/migrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock serialises concurrent migrations (several drainers
// starting at once) with a transaction-scoped advisory lock.
const migrationLock = `SELECT pg_advisory_xact_lock(7355608)`

// Backend writes orders to PostgreSQL. It is safe for concurrent use.
type Backend struct {
	db *sql.DB
}

var _ consumer.Backend = (*Backend)(nil)

// Open connects with a pool of at most poolSize connections and migrates.
func Open(ctx context.Context, dsn string, poolSize int) (*Backend, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(max(2, poolSize))
	db.SetMaxIdleConns(max(2, poolSize))
	if err := migrate.Up(ctx, db, migrations, "migrations", migrationLock); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: %w", classify(err))
	}
	return &Backend{db: db}, nil
}

// DB is the pool, for metrics and tests.
func (b *Backend) DB() *sql.DB { return b.db }

// Close closes the pool.
func (b *Backend) Close() error { return b.db.Close() }

// EnsureSale sets a sale's stock; remaining is the new stock less the
// orders confirmed so far, never below zero.
func (b *Backend) EnsureSale(ctx context.Context, sale string, stock int64) error {
	_, err := b.db.ExecContext(ctx, `
		INSERT INTO sales (sale, stock, remaining) VALUES ($1, $2, $2)
		ON CONFLICT (sale) DO UPDATE SET
			stock = excluded.stock,
			remaining = GREATEST(0, excluded.stock -
				(SELECT count(*) FROM orders o WHERE o.sale = excluded.sale AND o.status = 'confirmed')),
			updated_at = now()`, sale, stock)
	if err != nil {
		return fmt.Errorf("postgres: ensure sale %s: %w", sale, classify(err))
	}
	return nil
}

// Commit decides a batch in one transaction.
func (b *Backend) Commit(ctx context.Context, orders []consumer.Order) ([]consumer.Result, error) {
	conn, err := b.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", classify(err))
	}
	defer conn.Close()
	results := make([]consumer.Result, len(orders))
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		tx, err := pc.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		batch := &pgx.Batch{}
		for _, o := range orders {
			batch.Queue(`SELECT out_status, out_reason FROM sluice_decide($1, $2, $3, $4, $5, $6)`,
				o.ID, o.Sale, o.BuyerID, int32(max(1, o.PerBuyer)), int64(o.Seq), o.AdmittedAt)
		}
		br := tx.SendBatch(ctx, batch)
		for i := range orders {
			var status string
			var reason *string
			if err := br.QueryRow().Scan(&status, &reason); err != nil {
				br.Close()
				return fmt.Errorf("order %s: %w", orders[i].ID, err)
			}
			if status == "confirmed" {
				results[i] = consumer.Result{Outcome: consumer.Confirmed}
			} else {
				results[i] = consumer.Result{Outcome: consumer.Rejected}
				if reason != nil {
					results[i].Reason = *reason
				}
			}
		}
		if err := br.Close(); err != nil {
			return err
		}
		return tx.Commit(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: commit: %w", classify(err))
	}
	return results, nil
}

// classify marks errors of the server as a whole (unreachable, shutting
// down, out of resources) as consumer.ErrUnavailable.
func classify(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "53", "57", "58": // connection, resources, operator intervention, system
			return fmt.Errorf("%w: %w", consumer.ErrUnavailable, err)
		}
		return err
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded) || pgconn.SafeToRetry(err) ||
		errors.Is(err, sql.ErrConnDone) || isConnectError(err) {
		return fmt.Errorf("%w: %w", consumer.ErrUnavailable, err)
	}
	return err
}

func isConnectError(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}
