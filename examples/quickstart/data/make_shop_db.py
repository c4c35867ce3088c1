"""Build data/shop.db (the quickstart's "production database") from data/shop.sql."""

import sqlite3
from pathlib import Path

here = Path(__file__).parent
database = here / "shop.db"
database.unlink(missing_ok=True)
with sqlite3.connect(database) as connection:
    connection.executescript((here / "shop.sql").read_text())
print(f"created {database.name}")
