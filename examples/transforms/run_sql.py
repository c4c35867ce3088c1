"""Run a .sql file against $SHOP_DB_URL (the example's "production" PostgreSQL database).

    python run_sql.py seed.sql
"""

import os
import sys
from pathlib import Path

import sqlalchemy

url = os.environ.get("SHOP_DB_URL")
if not url:
    raise SystemExit("set SHOP_DB_URL, e.g. postgresql://user:password@localhost/shop")
with sqlalchemy.create_engine(url).begin() as connection:
    connection.exec_driver_sql(Path(sys.argv[1]).read_text())
print(f"ran {sys.argv[1]}")
