-- Bob comes back, somewhere else; Carol's name is written again, unchanged
INSERT INTO customers VALUES (2, 'Bob', 'Lyon');
UPDATE customers SET name = 'Carol' WHERE id = 3;
