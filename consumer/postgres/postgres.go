// Package postgres is the PostgreSQL order backend (jackc/pgx/v5): the
// same schema and guarantees as the SQLite backend, each sale's part of a
// batch decided by one function call in one round trip and one
// transaction.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"maps"
	"net"
	"strconv"
	"strings"
	"time"

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
	db    *sql.DB
	where string
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
	return &Backend{db: db, where: describe(cfg)}, nil
}

// describe names the server and database a connection goes to, and
// nothing that grants access to it: no user, password or parameters.
func describe(cfg *pgx.ConnConfig) string {
	if strings.HasPrefix(cfg.Host, "/") { // a Unix socket's directory
		return fmt.Sprintf("postgres:///%s?host=%s&port=%d", cfg.Database, cfg.Host, cfg.Port)
	}
	return fmt.Sprintf("postgres://%s/%s", net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), cfg.Database)
}

// Describe is "postgres://host:port/database", without the user,
// password or parameters of the connection string.
func (b *Backend) Describe() string { return b.where }

// DB is the pool, for metrics and tests.
func (b *Backend) DB() *sql.DB { return b.db }

// Cancel cancels a confirmed order: its row reads cancelled (and frees
// the buyer's slot) and its item returns to the sale, in one transaction.
func (b *Backend) Cancel(ctx context.Context, o consumer.Order) (bool, error) {
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("%w: postgres: begin: %w", consumer.ErrUnavailable, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE orders SET status = 'cancelled', reason = 'cancelled', buyer_slot = NULL, decided_at = now()
		WHERE order_id = $1 AND sale = $2 AND status = 'confirmed'`, o.ID, o.Sale)
	if err != nil {
		return false, fmt.Errorf("%w: postgres: cancel: %w", consumer.ErrUnavailable, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE sales SET remaining = remaining + 1, updated_at = now() WHERE sale = $1`, o.Sale); err != nil {
		return false, fmt.Errorf("%w: postgres: cancel: %w", consumer.ErrUnavailable, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("%w: postgres: commit: %w", consumer.ErrUnavailable, err)
	}
	return true, nil
}

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

// Commit decides a batch: one call of sluice_decide_batch per sale in the
// batch, each its own transaction. A call is one statement run without
// BEGIN and COMMIT around it, so the sale's stock row is locked from the
// function's update to its commit and no client round trip sits in
// between. If a sale's call fails after another's committed, the failed
// sale's orders come back to be retried and the error is kept for them.
func (b *Backend) Commit(ctx context.Context, orders []consumer.Order) ([]consumer.Result, error) {
	decided := make(map[string]consumer.Result, len(orders))
	var failed error
	for _, group := range consumer.BySale(orders) {
		if failed == nil {
			failed = b.decide(ctx, group, decided)
			if failed != nil && len(decided) == 0 {
				return nil, failed // nothing committed
			}
		}
		if failed != nil {
			for _, o := range group {
				decided[o.ID] = consumer.Result{Outcome: consumer.Retry, Err: failed}
			}
		}
	}
	results := make([]consumer.Result, len(orders))
	for i, o := range orders {
		r, ok := decided[o.ID]
		if !ok {
			return nil, fmt.Errorf("postgres: no decision for order %s", o.ID)
		}
		results[i] = r
	}
	return results, nil
}

// decide runs sluice_decide_batch for one sale's orders and records each
// decision in decided.
func (b *Backend) decide(ctx context.Context, group []consumer.Order, decided map[string]consumer.Result) error {
	ids := make([]string, len(group))
	buyers := make([]string, len(group))
	seqs := make([]int64, len(group))
	admitted := make([]time.Time, len(group))
	payloads := make([]*string, len(group)) // NULL for an order without one
	variants := make([]*string, len(group)) // NULL in a sale without variants
	for i, o := range group {
		ids[i], buyers[i], seqs[i], admitted[i] = o.ID, o.BuyerID, int64(o.Seq), o.AdmittedAt
		if len(o.Payload) > 0 {
			p := string(o.Payload)
			payloads[i] = &p
		}
		if o.Variant != "" {
			variants[i] = &group[i].Variant
		}
	}
	a := batchArgs{ids, buyers, seqs, admitted, payloads, variants}
	got, err := b.call(ctx, group[0], a, true)
	if isUniqueViolation(err) {
		// The plain insert met a row after all: again, the careful way.
		got, err = b.call(ctx, group[0], a, false)
	}
	if err != nil {
		return err
	}
	maps.Copy(decided, got)
	return nil
}

// batchArgs are a batch's columns, as sluice_decide_batch takes them.
type batchArgs struct {
	ids, buyers []string
	seqs        []int64
	admitted    []time.Time
	payloads    []*string
	variants    []*string
}

// call runs sluice_decide_batch once; plain lets it try a plain insert
// first.
func (b *Backend) call(ctx context.Context, first consumer.Order, a batchArgs, plain bool) (map[string]consumer.Result, error) {
	ids := a.ids
	rows, err := b.db.QueryContext(ctx, `SELECT out_id, out_status, out_reason FROM sluice_decide_batch($1, $2, $3, $4, $5, $6, $7, $8::text[]::jsonb[], $9::text[])`,
		first.Sale, int32(max(1, first.PerBuyer)), a.ids, a.buyers, a.seqs, a.admitted, plain, a.payloads, a.variants)
	if err != nil {
		return nil, decideErr(err)
	}
	got := make(map[string]consumer.Result, len(ids))
	for rows.Next() {
		var id, status string
		var reason sql.NullString
		if err := rows.Scan(&id, &status, &reason); err != nil {
			rows.Close()
			return nil, decideErr(err)
		}
		if status == "confirmed" || status == "cancelled" { // cancelled: confirmed first
			got[id] = consumer.Result{Outcome: consumer.Confirmed}
		} else {
			got[id] = consumer.Result{Outcome: consumer.Rejected, Reason: reason.String}
		}
	}
	// The statement commits as it ends: an error up to here means it
	// did not.
	if err := rows.Close(); err != nil {
		return nil, decideErr(err)
	}
	return got, nil
}

func decideErr(err error) error { return fmt.Errorf("postgres: decide: %w", classify(err)) }

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// classify marks errors of the server as a whole (unreachable, shutting
// down, out of resources) as consumer.ErrUnavailable.
func classify(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		// connection, resources, operator intervention, system; and
		// serialization failures and deadlocks, which concern the batch
		// as a whole and pass when it runs again.
		case "08", "53", "57", "58", "40":
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
