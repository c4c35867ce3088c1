DROP TABLE IF EXISTS customers;
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, city text);
INSERT INTO customers VALUES (1, 'Alice', 'Berlin'), (2, 'Bob', 'Paris'), (3, 'Carol', 'Oslo');
