-- Bob moves, Dan signs up, Carol leaves; a sale in one transaction over both tables
UPDATE customers SET country = 'ES' WHERE id = 2;
INSERT INTO customers VALUES (4, 'Dan', 'NL', NOW(3));
DELETE FROM customers WHERE id = 3;
START TRANSACTION;
UPDATE products SET stock = stock - 1 WHERE sku = 'MUG';
UPDATE products SET stock = stock - 1 WHERE sku = 'MUG';
COMMIT;
-- a key change: the old key leaves Bronze
UPDATE products SET sku = 'HAT' WHERE sku = 'CAP';
-- a column renamed, then written under its new name: Bronze renames its column (same field id)
ALTER TABLE customers RENAME COLUMN country TO country_code;
UPDATE customers SET country_code = 'PT' WHERE id = 1;
-- a row inserted and deleted between two runs never reaches Bronze
INSERT INTO customers VALUES (5, 'Temp', 'XX', NOW(3));
DELETE FROM customers WHERE id = 5;
