-- one transaction: Alice moves to Hamburg, then on to Munich; Bob leaves.
-- Hamburg was never visible at a committed instant: it is not kept as a version.
UPDATE customers SET city = 'Hamburg' WHERE id = 1;
UPDATE customers SET city = 'Munich' WHERE id = 1;
DELETE FROM customers WHERE id = 2;
