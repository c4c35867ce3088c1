"""``mysql_cdc``: MySQL and MariaDB binary logs (ROW events) into Bronze, in mini-batches."""
