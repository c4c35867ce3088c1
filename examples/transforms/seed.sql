DROP TABLE IF EXISTS customers;
CREATE TABLE customers (
  id int PRIMARY KEY, first_name text, last_name text, country text, email text,
  iban text, password_hash text, status text, "e-mail verified" boolean);
INSERT INTO customers VALUES
  (1, 'Alice', 'Martin', 'DE', 'alice@example.com', 'DE89370400440532013000', 'x1', 'active', true),
  (2, 'Bob', 'Stone', 'US', 'bob@example.com', 'US64SVBKUS6S3300958879', 'x2', 'active', false),
  (3, 'QA', 'Robot', 'FR', 'qa@example.com', 'FR7630006000011234567890189', 'x3', 'test', true);
