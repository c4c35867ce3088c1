"""The example's source: `python make_db.py ROWS` writes events.db with ROWS events."""

import sqlite3
import sys

rows = int(sys.argv[1])
with sqlite3.connect("events.db") as db:
    db.execute("DROP TABLE IF EXISTS events")
    db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT, amount REAL)")
    db.executemany("INSERT INTO events VALUES (?, ?, ?)",
                   ((i, ("view", "click", "buy")[i % 3], i * 0.5) for i in range(1, rows + 1)))
print(f"events.db: {rows:,} events")
