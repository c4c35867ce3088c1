"""Iceberg side of the runtime: catalogs from the artifact, one-transaction commits, state."""
