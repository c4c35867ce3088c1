"""Ingestion: dlt extracts and normalizes; floe commits to Iceberg (see runner.py)."""
