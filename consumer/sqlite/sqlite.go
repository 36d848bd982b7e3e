// Package sqlite is the embedded order backend: a SQLite file (pure Go,
// modernc.org/sqlite) in WAL mode with synchronous=FULL, written one
// BEGIN IMMEDIATE transaction per batch.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"sluice/consumer"
	"sluice/internal/migrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Backend writes orders to a SQLite file. It is safe for concurrent use;
// SQLite serialises the writers.
type Backend struct {
	db *sql.DB
}

var _ consumer.Backend = (*Backend)(nil)

// DSN is the connection string Open uses for path: WAL, synchronous=FULL
// (a commit is on disk when it returns), a busy timeout, foreign keys, and
// BEGIN IMMEDIATE for write transactions.
func DSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string) (*Backend, error) {
	db, err := sql.Open("sqlite", DSN(path))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	if err := migrate.Up(ctx, db, migrations, "migrations", ""); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	return &Backend{db: db}, nil
}

// DB is the database handle, for pool metrics and tests.
func (b *Backend) DB() *sql.DB { return b.db }

// Close closes the database.
func (b *Backend) Close() error { return b.db.Close() }

func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }

// EnsureSale sets a sale's stock; the remaining stock is the new stock
// less the orders confirmed so far, never below zero.
func (b *Backend) EnsureSale(ctx context.Context, sale string, stock int64) error {
	_, err := b.db.ExecContext(ctx, `
		INSERT INTO sales (sale, stock, remaining, updated_at) VALUES (?1, ?2, ?2, ?3)
		ON CONFLICT (sale) DO UPDATE SET
			stock = excluded.stock,
			remaining = MAX(0, excluded.stock -
				(SELECT COUNT(*) FROM orders WHERE orders.sale = excluded.sale AND orders.status = 'confirmed')),
			updated_at = excluded.updated_at`,
		sale, stock, now())
	if err != nil {
		return fmt.Errorf("%w: sqlite: ensure sale %s: %w", consumer.ErrUnavailable, sale, err)
	}
	return nil
}

// Commit decides a batch in one transaction: each order is confirmed if
// its sale has stock left and its buyer a free slot, rejected otherwise,
// and an order already decided gets its earlier decision back.
func (b *Backend) Commit(ctx context.Context, orders []consumer.Order) ([]consumer.Result, error) {
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: sqlite: begin: %w", consumer.ErrUnavailable, err)
	}
	defer tx.Rollback()
	st, err := prepare(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("%w: sqlite: prepare: %w", consumer.ErrUnavailable, err)
	}
	defer st.close()
	decided := now()
	results := make([]consumer.Result, len(orders))
	for i, o := range orders {
		results[i], err = st.decide(ctx, o, decided)
		if err != nil {
			return nil, fmt.Errorf("sqlite: order %s: %w", o.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("%w: sqlite: commit: %w", consumer.ErrUnavailable, err)
	}
	return results, nil
}

type stmts struct {
	countSlots, insert, take, reject, existing, insertRejected *sql.Stmt
}

func prepare(ctx context.Context, tx *sql.Tx) (*stmts, error) {
	var s stmts
	var err error
	for _, p := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&s.countSlots, `SELECT COUNT(*) FROM orders WHERE sale = ? AND buyer_id = ? AND buyer_slot IS NOT NULL`},
		{&s.insert, `INSERT INTO orders (order_id, sale, buyer_id, buyer_slot, status, seq, admitted_at, decided_at)
			VALUES (?, ?, ?, ?, 'confirmed', ?, ?, ?) ON CONFLICT DO NOTHING`},
		{&s.take, `UPDATE sales SET remaining = remaining - 1 WHERE sale = ? AND remaining > 0`},
		{&s.reject, `UPDATE orders SET status = 'rejected', reason = ?, buyer_slot = NULL WHERE order_id = ?`},
		{&s.existing, `SELECT status, COALESCE(reason, '') FROM orders WHERE order_id = ?`},
		{&s.insertRejected, `INSERT INTO orders (order_id, sale, buyer_id, buyer_slot, status, reason, seq, admitted_at, decided_at)
			VALUES (?, ?, ?, NULL, 'rejected', ?, ?, ?, ?) ON CONFLICT DO NOTHING`},
	} {
		if *p.dst, err = tx.PrepareContext(ctx, p.q); err != nil {
			s.close()
			return nil, err
		}
	}
	return &s, nil
}

func (s *stmts) close() {
	for _, st := range []*sql.Stmt{s.countSlots, s.insert, s.take, s.reject, s.existing, s.insertRejected} {
		if st != nil {
			st.Close()
		}
	}
}

func (s *stmts) decide(ctx context.Context, o consumer.Order, decided string) (consumer.Result, error) {
	admitted := o.AdmittedAt.UTC().Format(time.RFC3339Nano)
	slot := int64(0)
	if o.PerBuyer > 1 {
		if err := s.countSlots.QueryRowContext(ctx, o.Sale, o.BuyerID).Scan(&slot); err != nil {
			return consumer.Result{}, err
		}
	}
	if slot < max(1, o.PerBuyer) {
		res, err := s.insert.ExecContext(ctx, o.ID, o.Sale, o.BuyerID, slot, int64(o.Seq), admitted, decided)
		if err != nil {
			return consumer.Result{}, err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			res, err := s.take.ExecContext(ctx, o.Sale)
			if err != nil {
				return consumer.Result{}, err
			}
			if n, _ := res.RowsAffected(); n == 1 {
				return consumer.Result{Outcome: consumer.Confirmed}, nil
			}
			if _, err := s.reject.ExecContext(ctx, consumer.ReasonSoldOut, o.ID); err != nil {
				return consumer.Result{}, err
			}
			return consumer.Result{Outcome: consumer.Rejected, Reason: consumer.ReasonSoldOut}, nil
		}
	}
	var status, reason string
	err := s.existing.QueryRowContext(ctx, o.ID).Scan(&status, &reason)
	switch {
	case err == nil:
		if status == "confirmed" {
			return consumer.Result{Outcome: consumer.Confirmed}, nil
		}
		return consumer.Result{Outcome: consumer.Rejected, Reason: reason}, nil
	case !errors.Is(err, sql.ErrNoRows):
		return consumer.Result{}, err
	}
	// Not this order's row: the buyer's slots are taken.
	if _, err := s.insertRejected.ExecContext(ctx, o.ID, o.Sale, o.BuyerID, consumer.ReasonAlreadyOrdered, int64(o.Seq), admitted, decided); err != nil {
		return consumer.Result{}, err
	}
	return consumer.Result{Outcome: consumer.Rejected, Reason: consumer.ReasonAlreadyOrdered}, nil
}
