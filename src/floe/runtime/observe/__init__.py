"""Operating floe without opening Dagster: metrics (``metrics.py``) exported over OTLP or to a
Prometheus Pushgateway (``export.py``), failure records kept beside the tables
(``failures.py``), and ``floe status`` (``status.py``)."""
