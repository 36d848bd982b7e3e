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

-- Decides one order, the same way the SQLite backend does, in one call so
-- that a batch of calls is one pipelined round trip.
CREATE FUNCTION sluice_decide(p_order_id TEXT, p_sale TEXT, p_buyer TEXT, p_per_buyer INTEGER,
                              p_seq BIGINT, p_admitted TIMESTAMPTZ)
RETURNS TABLE (out_status TEXT, out_reason TEXT)
LANGUAGE plpgsql AS $$
DECLARE
    v_slot INTEGER := 0;
    v_rows INTEGER;
BEGIN
    IF p_per_buyer > 1 THEN
        SELECT count(*) INTO v_slot FROM orders o
         WHERE o.sale = p_sale AND o.buyer_id = p_buyer AND o.buyer_slot IS NOT NULL;
    END IF;
    IF v_slot < GREATEST(1, p_per_buyer) THEN
        INSERT INTO orders (order_id, sale, buyer_id, buyer_slot, status, seq, admitted_at)
        VALUES (p_order_id, p_sale, p_buyer, v_slot, 'confirmed', p_seq, p_admitted)
        ON CONFLICT DO NOTHING;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
        IF v_rows = 1 THEN
            UPDATE sales s SET remaining = s.remaining - 1 WHERE s.sale = p_sale AND s.remaining > 0;
            GET DIAGNOSTICS v_rows = ROW_COUNT;
            IF v_rows = 1 THEN
                RETURN QUERY SELECT 'confirmed'::TEXT, NULL::TEXT;
                RETURN;
            END IF;
            UPDATE orders o SET status = 'rejected', reason = 'sold_out', buyer_slot = NULL
             WHERE o.order_id = p_order_id;
            RETURN QUERY SELECT 'rejected'::TEXT, 'sold_out'::TEXT;
            RETURN;
        END IF;
    END IF;
    RETURN QUERY SELECT o.status, o.reason FROM orders o WHERE o.order_id = p_order_id;
    IF FOUND THEN
        RETURN;
    END IF;
    -- Not this order's row: the buyer's slots are taken.
    INSERT INTO orders (order_id, sale, buyer_id, buyer_slot, status, reason, seq, admitted_at)
    VALUES (p_order_id, p_sale, p_buyer, NULL, 'rejected', 'already_ordered', p_seq, p_admitted)
    ON CONFLICT DO NOTHING;
    RETURN QUERY SELECT 'rejected'::TEXT, 'already_ordered'::TEXT;
END
$$;
