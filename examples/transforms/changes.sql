UPDATE customers SET country = 'NL', iban = 'NL91ABNA0417164300' WHERE id = 2;  -- Bob moves
UPDATE customers SET status = 'test' WHERE id = 1;   -- Alice becomes a test account: removed
INSERT INTO customers VALUES
  (4, 'Dana', 'Ito', 'FR', 'dana@example.com', NULL, 'x4', 'active', false);
