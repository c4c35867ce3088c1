-- The quickstart's "production database". `make run` builds data/shop.db from this file.
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT,
                        updated_at TEXT NOT NULL);
INSERT INTO customers VALUES (1, 'Alice', 'DE', '2024-01-01T08:00:00'),
                             (2, 'Bob', 'FR', '2024-01-01T09:00:00'),
                             (3, 'Carol', 'US', '2024-01-02T07:30:00');
CREATE TABLE products (sku TEXT PRIMARY KEY, title TEXT NOT NULL, price REAL,
                       updated_at TEXT NOT NULL);
INSERT INTO products VALUES ('MUG-1', 'Mug', 9.5, '2024-01-01T00:00:00'),
                            ('TEE-2', 'T-shirt', 19.0, '2024-01-01T00:00:00'),
                            ('CAP-3', 'Cap', 14.0, '2024-01-02T00:00:00');
