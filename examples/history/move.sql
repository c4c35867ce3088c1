-- Alice moves twice, Bob leaves
UPDATE customers SET city = 'Hamburg' WHERE id = 1;
UPDATE customers SET city = 'Munich' WHERE id = 1;
DELETE FROM customers WHERE id = 2;
