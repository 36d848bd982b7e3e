-- The variant an order takes (a size, a colour), in a sale with
-- variants; NULL in a sale without. The sale's stock stays one number in
-- sales: the gates keep each variant's stock exact before an order gets
-- here.
ALTER TABLE orders ADD COLUMN variant TEXT;

-- sluice_decide_batch as in 0004, with each order's variant written with
-- its row.
DROP FUNCTION sluice_decide_batch(TEXT, INTEGER, TEXT[], TEXT[], BIGINT[], TIMESTAMPTZ[], BOOLEAN, JSONB[]);
CREATE FUNCTION sluice_decide_batch(p_sale TEXT, p_per_buyer INTEGER, p_ids TEXT[], p_buyers TEXT[],
                                    p_seqs BIGINT[], p_admitted TIMESTAMPTZ[], p_plain BOOLEAN,
                                    p_payloads JSONB[], p_variants TEXT[])
RETURNS TABLE (out_id TEXT, out_status TEXT, out_reason TEXT)
LANGUAGE plpgsql
SET plan_cache_mode = auto
SET enable_seqscan = off
AS $$
DECLARE
    v_new       TEXT[];
    v_n         INTEGER;
    v_remaining BIGINT;
    v_take      BIGINT := 0;
BEGIN
    IF p_plain AND p_per_buyer <= 1 AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_id = ANY (p_ids)) THEN
        INSERT INTO orders (order_id, sale, buyer_id, buyer_slot, status, seq, admitted_at, payload, variant)
        SELECT b.id, p_sale, b.buyer, 0, 'confirmed', b.seq, b.adm, b.pl, b.va
          FROM unnest(p_ids, p_buyers, p_seqs, p_admitted, p_payloads, p_variants) AS b (id, buyer, seq, adm, pl, va);
        SELECT array_agg(b.id ORDER BY b.seq) INTO v_new FROM unnest(p_ids, p_seqs) AS b (id, seq);
    ELSIF p_per_buyer <= 1 THEN
        -- One order per buyer: every slot is 0 and the unique index does
        -- the rest.
        WITH ins AS (
            INSERT INTO orders (order_id, sale, buyer_id, buyer_slot, status, seq, admitted_at, payload, variant)
            SELECT b.id, p_sale, b.buyer, 0, 'confirmed', b.seq, b.adm, b.pl, b.va
              FROM unnest(p_ids, p_buyers, p_seqs, p_admitted, p_payloads, p_variants) AS b (id, buyer, seq, adm, pl, va)
            ON CONFLICT DO NOTHING
            RETURNING order_id, seq
        )
        SELECT array_agg(order_id ORDER BY seq) INTO v_new FROM ins;
    ELSE
        -- A buyer's slot: their confirmed orders outside this batch plus
        -- their rank within it.
        EXECUTE $q$
        WITH batch AS (
            SELECT b.id, b.buyer, b.seq, b.adm, b.pl, b.va,
                   COALESCE(h.n, 0) + row_number() OVER (PARTITION BY b.buyer ORDER BY b.seq) - 1 AS slot
              FROM unnest($3, $4, $5, $6, $7, $8) AS b (id, buyer, seq, adm, pl, va)
              LEFT JOIN (SELECT o.buyer_id, count(*) AS n
                           FROM orders o
                          WHERE o.sale = $1 AND o.buyer_id = ANY ($4)
                            AND o.buyer_slot IS NOT NULL AND o.order_id <> ALL ($3)
                          GROUP BY o.buyer_id) h ON h.buyer_id = b.buyer
        ), ins AS (
            INSERT INTO orders (order_id, sale, buyer_id, buyer_slot, status, seq, admitted_at, payload, variant)
            SELECT id, $1, buyer, slot, 'confirmed', seq, adm, pl, va FROM batch
             WHERE slot < $2
            ON CONFLICT DO NOTHING
            RETURNING order_id, seq
        )
        SELECT array_agg(order_id ORDER BY seq) FROM ins
        $q$ INTO v_new USING p_sale, p_per_buyer, p_ids, p_buyers, p_seqs, p_admitted, p_payloads, p_variants;
    END IF;
    v_n := COALESCE(cardinality(v_new), 0);

    IF v_n > 0 THEN
        -- NO KEY UPDATE, not UPDATE: the inserts above hold KEY SHARE on
        -- this row through the foreign key, in every concurrent batch.
        SELECT s.remaining INTO v_remaining FROM sales s WHERE s.sale = p_sale FOR NO KEY UPDATE;
        v_take := LEAST(v_remaining, v_n);
        UPDATE sales s SET remaining = s.remaining - v_take, updated_at = now() WHERE s.sale = p_sale;
        IF v_take < v_n THEN
            UPDATE orders o SET status = 'rejected', reason = 'sold_out', buyer_slot = NULL
             WHERE o.order_id = ANY (v_new[v_take + 1:]);
        END IF;
        RETURN QUERY
            SELECT u.id,
                   CASE WHEN u.i <= v_take THEN 'confirmed' ELSE 'rejected' END,
                   CASE WHEN u.i <= v_take THEN NULL ELSE 'sold_out' END
              FROM unnest(v_new) WITH ORDINALITY AS u (id, i);
    END IF;

    IF v_n < cardinality(p_ids) THEN
        -- Orders neither new nor decided before: the buyer's slots are
        -- taken. Then every order that was not new, as the table has it.
        INSERT INTO orders (order_id, sale, buyer_id, buyer_slot, status, reason, seq, admitted_at, payload, variant)
        SELECT b.id, p_sale, b.buyer, NULL, 'rejected', 'already_ordered', b.seq, b.adm, b.pl, b.va
          FROM unnest(p_ids, p_buyers, p_seqs, p_admitted, p_payloads, p_variants) AS b (id, buyer, seq, adm, pl, va)
         WHERE b.id <> ALL (COALESCE(v_new, '{}'))
        ON CONFLICT DO NOTHING;
        RETURN QUERY
            SELECT o.order_id, o.status, o.reason FROM orders o
             WHERE o.order_id = ANY (p_ids) AND o.order_id <> ALL (COALESCE(v_new, '{}'));
    END IF;
END
$$;
