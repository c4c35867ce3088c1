DROP TABLE IF EXISTS customers, order_lines;
CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, country text,
                        updated_at timestamptz NOT NULL);
INSERT INTO customers VALUES
  (1, 'Alice', 'DE', '2024-05-01 08:00+00'),
  (2, 'Bob',   'FR', '2024-05-01 09:00+00'),
  (3, 'Carol', 'US', '2024-05-01 10:00+00');
CREATE TABLE order_lines (order_id integer NOT NULL, line integer NOT NULL, sku text NOT NULL,
                          qty integer NOT NULL, PRIMARY KEY (order_id, line));
INSERT INTO order_lines VALUES (1, 1, 'MUG-1', 2), (1, 2, 'TEE-2', 1), (1, 3, 'CAP-3', 1),
                               (2, 1, 'MUG-1', 4);
