// Package sqlite is the embedded order backend: a SQLite file (pure Go,
// modernc.org/sqlite) in WAL mode with synchronous=FULL, written one
// BEGIN IMMEDIATE transaction per batch.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
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
	// where is the file's absolute path: the same file named two ways
	// is the same backend.
	where string
	// writer serialises this process's write transactions: SQLite has one
	// writer at a time, and its busy handler waits by sleeping in steps of
	// milliseconds, which would be the drain's pace. busy_timeout still
	// covers other processes.
	writer sync.Mutex
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
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	return &Backend{db: db, where: abs}, nil
}

// Describe is "sqlite:" and the file's absolute path.
func (b *Backend) Describe() string { return "sqlite:" + b.where }

// DB is the database handle, for pool metrics and tests.
func (b *Backend) DB() *sql.DB { return b.db }

// Close closes the database.
func (b *Backend) Close() error { return b.db.Close() }

func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }

// EnsureSale sets a sale's stock; the remaining stock is the new stock
// less the orders confirmed so far, never below zero.
func (b *Backend) EnsureSale(ctx context.Context, sale string, stock int64) error {
	b.writer.Lock()
	defer b.writer.Unlock()
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

// Commit decides a batch in one transaction, set-wise: the orders are
// inserted as confirmed where their buyer has a free slot, the sale's
// stock is taken for as many of the new ones as it has (in ledger order),
// the new ones beyond it are marked sold out, and an order that is
// neither new nor already present is refused as already ordered. An
// order decided before keeps its decision.
func (b *Backend) Commit(ctx context.Context, orders []consumer.Order) ([]consumer.Result, error) {
	b.writer.Lock()
	defer b.writer.Unlock()
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: sqlite: begin: %w", consumer.ErrUnavailable, err)
	}
	defer tx.Rollback()
	decided := make(map[string]consumer.Result, len(orders))
	for _, group := range consumer.BySale(orders) {
		for start := 0; start < len(group); start += maxChunk {
			chunk := group[start:min(len(group), start+maxChunk)]
			if err := decideChunk(ctx, tx, chunk, decided); err != nil {
				return nil, fmt.Errorf("sqlite: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("%w: sqlite: commit: %w", consumer.ErrUnavailable, err)
	}
	results := make([]consumer.Result, len(orders))
	for i, o := range orders {
		results[i] = decided[o.ID]
	}
	return results, nil
}

// maxChunk keeps a statement's parameters under SQLite's limit.
const maxChunk = 1000

// decideChunk decides orders of one sale, sorted by sequence.
func decideChunk(ctx context.Context, tx *sql.Tx, orders []consumer.Order, decided map[string]consumer.Result) error {
	sale := orders[0].Sale
	perBuyer := max(1, orders[0].PerBuyer)
	slots, err := buyerSlots(ctx, tx, orders, perBuyer)
	if err != nil {
		return err
	}
	stamp := now()
	var q strings.Builder
	args := make([]any, 0, 9*len(orders))
	q.WriteString(`INSERT INTO orders (order_id, sale, buyer_id, buyer_slot, status, seq, admitted_at, decided_at, payload, variant) VALUES `)
	n := 0
	for i, o := range orders {
		if slots[i] >= perBuyer {
			continue // no free slot: refused below
		}
		if n > 0 {
			q.WriteByte(',')
		}
		q.WriteString(`(?,?,?,?,'confirmed',?,?,?,?,?)`)
		args = append(args, o.ID, sale, o.BuyerID, slots[i], int64(o.Seq), o.AdmittedAt.UTC().Format(time.RFC3339Nano), stamp, payloadArg(o), variantArg(o))
		n++
	}
	inserted, err := insertConfirmed(ctx, tx, q.String(), args, orders, slots, perBuyer, n)
	if err != nil {
		return err
	}
	var fresh []string // new orders, in ledger order
	for _, o := range orders {
		if inserted[o.ID] {
			fresh = append(fresh, o.ID)
		}
	}
	var soldOut []string
	if len(fresh) > 0 {
		// BEGIN IMMEDIATE holds the write lock: nothing changes the row
		// between the read and the update.
		var remaining int64
		if err := tx.QueryRowContext(ctx, `SELECT remaining FROM sales WHERE sale = ?`, sale).Scan(&remaining); err != nil {
			return fmt.Errorf("stock of %s: %w", sale, err)
		}
		taken := min(remaining, int64(len(fresh)))
		if _, err := tx.ExecContext(ctx, `UPDATE sales SET remaining = remaining - ? WHERE sale = ?`, taken, sale); err != nil {
			return err
		}
		if soldOut = fresh[taken:]; len(soldOut) > 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE orders SET status = 'rejected', reason = 'sold_out', buyer_slot = NULL
				WHERE order_id IN (`+placeholders(len(soldOut))+`)`, anys(soldOut)...); err != nil {
				return err
			}
		}
	}
	for i, id := range fresh {
		if i < len(fresh)-len(soldOut) {
			decided[id] = consumer.Result{Outcome: consumer.Confirmed}
		} else {
			decided[id] = consumer.Result{Outcome: consumer.Rejected, Reason: consumer.ReasonSoldOut}
		}
	}
	if len(fresh) == len(orders) {
		return nil // the common case: every order new, all decided above
	}
	var ids []string // decided before, or refused for want of a slot
	for _, o := range orders {
		if !inserted[o.ID] {
			ids = append(ids, o.ID)
		}
	}
	rows, err := tx.QueryContext(ctx, `SELECT order_id, status, COALESCE(reason, '') FROM orders
		WHERE order_id IN (`+placeholders(len(ids))+`)`, anys(ids)...)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id, status, reason string
		if err := rows.Scan(&id, &status, &reason); err != nil {
			rows.Close()
			return err
		}
		decided[id] = result(status, reason)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	// Neither new nor there before: the buyer's slots are taken.
	for _, o := range orders {
		if _, ok := decided[o.ID]; ok {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO orders (order_id, sale, buyer_id, buyer_slot, status, reason, seq, admitted_at, decided_at, payload, variant)
			VALUES (?, ?, ?, NULL, 'rejected', ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			o.ID, sale, o.BuyerID, consumer.ReasonAlreadyOrdered, int64(o.Seq), o.AdmittedAt.UTC().Format(time.RFC3339Nano), stamp, payloadArg(o), variantArg(o)); err != nil {
			return err
		}
		decided[o.ID] = consumer.Result{Outcome: consumer.Rejected, Reason: consumer.ReasonAlreadyOrdered}
	}
	return nil
}

// payloadArg is an order's payload as its column holds it: JSON text, or
// NULL without one.
func payloadArg(o consumer.Order) any {
	if len(o.Payload) == 0 {
		return nil
	}
	return string(o.Payload)
}

// variantArg is an order's variant as its column holds it: NULL in a
// sale without variants.
func variantArg(o consumer.Order) any {
	if o.Variant == "" {
		return nil
	}
	return o.Variant
}

// insertConfirmed runs the batch's insert and returns which orders it
// inserted. The common case, every row new, is one plain multi-row
// INSERT; when a row conflicts (a redelivered order, a taken slot) it is
// undone to a savepoint and run again with RETURNING to learn which.
func insertConfirmed(ctx context.Context, tx *sql.Tx, insert string, args []any, orders []consumer.Order, slots []int64, perBuyer int64, n int) (map[string]bool, error) {
	inserted := make(map[string]bool, n)
	if n == 0 {
		return inserted, nil
	}
	if _, err := tx.ExecContext(ctx, `SAVEPOINT batch`); err != nil {
		return nil, err
	}
	res, err := tx.ExecContext(ctx, insert+` ON CONFLICT DO NOTHING`, args...)
	if err != nil {
		return nil, err
	}
	if affected, _ := res.RowsAffected(); affected == int64(n) {
		if _, err := tx.ExecContext(ctx, `RELEASE batch`); err != nil {
			return nil, err
		}
		for i, o := range orders {
			if slots[i] < perBuyer {
				inserted[o.ID] = true
			}
		}
		return inserted, nil
	}
	for _, stmt := range []string{`ROLLBACK TO batch`, `RELEASE batch`} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return nil, err
		}
	}
	rows, err := tx.QueryContext(ctx, insert+` ON CONFLICT DO NOTHING RETURNING order_id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		inserted[id] = true
	}
	return inserted, rows.Err()
}

// buyerSlots numbers each order's slot among its buyer's confirmed orders:
// the buyer's confirmed orders outside this batch, plus its rank within
// it. With one order per buyer every slot is 0 and the unique index does
// the rest.
func buyerSlots(ctx context.Context, tx *sql.Tx, orders []consumer.Order, perBuyer int64) ([]int64, error) {
	slots := make([]int64, len(orders))
	if perBuyer <= 1 {
		return slots, nil
	}
	buyers := map[string]bool{}
	var args []any
	args = append(args, orders[0].Sale)
	for _, o := range orders {
		if !buyers[o.BuyerID] {
			buyers[o.BuyerID] = true
			args = append(args, o.BuyerID)
		}
	}
	ids := make([]any, len(orders))
	for i, o := range orders {
		ids[i] = o.ID
	}
	rows, err := tx.QueryContext(ctx, `SELECT buyer_id, COUNT(*) FROM orders
		WHERE sale = ? AND buyer_id IN (`+placeholders(len(args)-1)+`) AND buyer_slot IS NOT NULL
		AND order_id NOT IN (`+placeholders(len(ids))+`) GROUP BY buyer_id`, append(args, ids...)...)
	if err != nil {
		return nil, err
	}
	held := map[string]int64{}
	for rows.Next() {
		var b string
		var n int64
		if err := rows.Scan(&b, &n); err != nil {
			rows.Close()
			return nil, err
		}
		held[b] = n
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	for i, o := range orders {
		slots[i] = held[o.BuyerID]
		held[o.BuyerID]++
	}
	return slots, nil
}

// Cancel cancels a confirmed order: its row reads cancelled (and frees
// the buyer's slot) and its item returns to the sale, in one transaction.
func (b *Backend) Cancel(ctx context.Context, o consumer.Order) (bool, error) {
	b.writer.Lock()
	defer b.writer.Unlock()
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("%w: sqlite: begin: %w", consumer.ErrUnavailable, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE orders SET status = 'cancelled', reason = 'cancelled', buyer_slot = NULL, decided_at = ?
		WHERE order_id = ? AND sale = ? AND status = 'confirmed'`, now(), o.ID, o.Sale)
	if err != nil {
		return false, fmt.Errorf("%w: sqlite: cancel: %w", consumer.ErrUnavailable, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE sales SET remaining = remaining + 1, updated_at = ? WHERE sale = ?`, now(), o.Sale); err != nil {
		return false, fmt.Errorf("%w: sqlite: cancel: %w", consumer.ErrUnavailable, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("%w: sqlite: commit: %w", consumer.ErrUnavailable, err)
	}
	return true, nil
}

func result(status, reason string) consumer.Result {
	// A cancelled order was confirmed first: a redelivery gets that.
	if status == "confirmed" || status == "cancelled" {
		return consumer.Result{Outcome: consumer.Confirmed}
	}
	return consumer.Result{Outcome: consumer.Rejected, Reason: reason}
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
