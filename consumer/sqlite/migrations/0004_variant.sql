-- The variant an order takes (a size, a colour), in a sale with
-- variants; NULL in a sale without. The sale's stock stays one number
-- in sales: the gates keep each variant's stock exact before an order
-- gets here.
ALTER TABLE orders ADD COLUMN variant TEXT;
