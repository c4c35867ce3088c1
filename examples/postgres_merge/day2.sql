-- Bob moves to Spain; Dan signs up; order 1 is edited down to two lines; order 3 arrives.
UPDATE customers SET country = 'ES', updated_at = '2024-05-02 08:00+00' WHERE id = 2;
INSERT INTO customers VALUES (4, 'Dan', 'NL', '2024-05-02 09:00+00');
DELETE FROM order_lines WHERE order_id = 1;
INSERT INTO order_lines VALUES (1, 1, 'MUG-1', 3), (1, 2, 'TEE-2', 1), (3, 1, 'CAP-3', 2);
-- order 2 is deleted at the source: a merge keeps it in Bronze (merges never delete)
DELETE FROM order_lines WHERE order_id = 2;
