DROP TABLE IF EXISTS products, customers;
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, country CHAR(2),
                        signed_up DATETIME(3)) DEFAULT CHARSET=utf8mb4;
CREATE TABLE products (sku VARCHAR(10) PRIMARY KEY, price DECIMAL(8,2), stock INT UNSIGNED,
                       attrs JSON) DEFAULT CHARSET=utf8mb4;
INSERT INTO customers VALUES (1, 'Alice', 'DE', '2024-01-01 09:00:00.125'),
  (2, 'Bob', 'FR', '2024-01-02 10:00:00'), (3, 'Carol', 'US', '2024-01-03 11:00:00');
INSERT INTO products VALUES ('MUG', 9.50, 12, '{"color": "red"}'),
  ('CAP', 20.00, 3, NULL), ('TEE', 15.00, 0, '{"sizes": ["S", "M"]}');
