DROP TABLE IF EXISTS orders, customers;
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, country text);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers (id),
                     total numeric(10,2), status text);
INSERT INTO customers VALUES (1, 'Alice', 'DE'), (2, 'Bob', 'FR'), (3, 'Carol', 'US');
INSERT INTO orders VALUES (10, 1, 25.00, 'paid'), (11, 2, 12.50, 'pending'),
                          (12, 3, 99.90, 'paid');
