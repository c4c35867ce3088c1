"""``postgres_cdc``: PostgreSQL logical replication (pgoutput) into Bronze, in mini-batches."""
