-- Stock per sale: the database has the last word on it.
CREATE TABLE sales (
    sale       TEXT PRIMARY KEY,
    stock      BIGINT NOT NULL CHECK (stock >= 0),
    remaining  BIGINT NOT NULL CHECK (remaining >= 0),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per order the drain decided. The order id is the key, so a
-- redelivered order finds its row and changes nothing. buyer_slot numbers
-- a buyer's confirmed orders in a sale (0 when a sale allows one) and is
-- NULL for a rejected order; the unique index keeps one confirmed order
-- per (sale, buyer, slot).
CREATE TABLE orders (
    order_id    TEXT PRIMARY KEY,
    sale        TEXT NOT NULL REFERENCES sales (sale),
    buyer_id    TEXT NOT NULL,
    buyer_slot  INTEGER,
    status      TEXT NOT NULL CHECK (status IN ('confirmed', 'rejected')),
    reason      TEXT,
    seq         BIGINT NOT NULL,
    admitted_at TIMESTAMPTZ NOT NULL,
    decided_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX orders_buyer_slot ON orders (sale, buyer_id, buyer_slot);
CREATE INDEX orders_sale_status ON orders (sale, status);
-- For the slot counts of sales that allow several orders per buyer.
CREATE INDEX orders_sale_buyer ON orders (sale, buyer_id) WHERE buyer_slot IS NOT NULL;

-- Decides a batch of one sale's orders in one call, the way the SQLite
-- backend does: insert the orders whose buyer has a free slot as
-- confirmed, take stock for as many of the new ones as the sale has (in
-- ledger order), mark the new ones beyond it sold out, refuse the orders
-- neither new nor decided before as already ordered, and return every
-- order's decision. An order decided before keeps its decision.
CREATE FUNCTION sluice_decide_batch(p_sale TEXT, p_per_buyer INTEGER, p_ids TEXT[], p_buyers TEXT[],
                                    p_seqs BIGINT[], p_admitted TIMESTAMPTZ[])
RETURNS TABLE (out_id TEXT, out_status TEXT, out_reason TEXT)
LANGUAGE plpgsql
-- Plan each call for its arrays: a generic plan made while the table was
-- small would keep scanning it whole as it grows.
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    v_new       TEXT[];
    v_remaining BIGINT;
    v_take      BIGINT;
BEGIN
    IF p_per_buyer <= 1 THEN
        -- One order per buyer: every slot is 0 and the unique index does
        -- the rest. (A branch of its own, so that the plan never scans
        -- orders for slot counts it does not need.)
        WITH ins AS (
            INSERT INTO orders (order_id, sale, buyer_id, buyer_slot, status, seq, admitted_at)
            SELECT b.id, p_sale, b.buyer, 0, 'confirmed', b.seq, b.adm
              FROM unnest(p_ids, p_buyers, p_seqs, p_admitted) AS b (id, buyer, seq, adm)
            ON CONFLICT DO NOTHING
            RETURNING order_id, seq
        )
        SELECT array_agg(order_id ORDER BY seq) INTO v_new FROM ins;
    ELSE
        -- A buyer's slot: their confirmed orders outside this batch plus
        -- their rank within it.
        WITH batch AS (
            SELECT b.id, b.buyer, b.seq, b.adm,
                   COALESCE(h.n, 0) + row_number() OVER (PARTITION BY b.buyer ORDER BY b.seq) - 1 AS slot
              FROM unnest(p_ids, p_buyers, p_seqs, p_admitted) AS b (id, buyer, seq, adm)
              LEFT JOIN (SELECT o.buyer_id, count(*) AS n
                           FROM orders o
                          WHERE o.sale = p_sale AND o.buyer_id = ANY (p_buyers)
                            AND o.buyer_slot IS NOT NULL AND o.order_id <> ALL (p_ids)
                          GROUP BY o.buyer_id) h ON h.buyer_id = b.buyer
        ), ins AS (
            INSERT INTO orders (order_id, sale, buyer_id, buyer_slot, status, seq, admitted_at)
            SELECT id, p_sale, buyer, slot, 'confirmed', seq, adm FROM batch
             WHERE slot < p_per_buyer
            ON CONFLICT DO NOTHING
            RETURNING order_id, seq
        )
        SELECT array_agg(order_id ORDER BY seq) INTO v_new FROM ins;
    END IF;

    IF v_new IS NOT NULL THEN
        -- NO KEY UPDATE, not UPDATE: the inserts above hold KEY SHARE on
        -- this row through the foreign key, in every concurrent batch.
        SELECT s.remaining INTO v_remaining FROM sales s WHERE s.sale = p_sale FOR NO KEY UPDATE;
        v_take := LEAST(v_remaining, cardinality(v_new));
        UPDATE sales s SET remaining = s.remaining - v_take, updated_at = now() WHERE s.sale = p_sale;
        IF v_take < cardinality(v_new) THEN
            UPDATE orders o SET status = 'rejected', reason = 'sold_out', buyer_slot = NULL
             WHERE o.order_id = ANY (v_new[v_take + 1:]);
        END IF;
    END IF;

    -- Orders neither new nor decided before: the buyer's slots are taken.
    -- Nothing to do in the common case, where every order was new.
    IF COALESCE(cardinality(v_new), 0) < cardinality(p_ids) THEN
        INSERT INTO orders (order_id, sale, buyer_id, buyer_slot, status, reason, seq, admitted_at)
        SELECT b.id, p_sale, b.buyer, NULL, 'rejected', 'already_ordered', b.seq, b.adm
          FROM unnest(p_ids, p_buyers, p_seqs, p_admitted) AS b (id, buyer, seq, adm)
         WHERE b.id <> ALL (COALESCE(v_new, '{}'))
        ON CONFLICT DO NOTHING;
    END IF;

    RETURN QUERY SELECT o.order_id, o.status, o.reason FROM orders o WHERE o.order_id = ANY (p_ids);
END
$$;
