-- Bob moves, Dan signs up, Carol leaves (with her order), order 11 ships, a new order arrives
UPDATE customers SET country = 'ES' WHERE id = 2;
INSERT INTO customers VALUES (4, 'Dan', 'NL');
DELETE FROM orders WHERE customer_id = 3;
DELETE FROM customers WHERE id = 3;
UPDATE orders SET status = 'shipped' WHERE id = 11;
INSERT INTO orders VALUES (13, 4, 5.00, 'pending');
-- a row inserted and deleted between two runs never reaches Bronze
INSERT INTO customers VALUES (5, 'Temp', 'XX');
DELETE FROM customers WHERE id = 5;
