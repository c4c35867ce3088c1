"""The example's "production" database: `python ledger.py day1`, then `day2` or `drift`."""

import sqlite3
import sys

DAYS = {
    "day1": """
        DROP TABLE IF EXISTS accounts;
        CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT, balance REAL,
                               closed BOOLEAN NOT NULL DEFAULT 0);
        INSERT INTO accounts (id, owner, balance) VALUES (1, 'Ada', 100.0), (2, 'Bob', 50.0),
                                                         (3, 'Cy', 0.0);
    """,
    # Bob pays Ada, Cy closes the account, Dee opens one
    "day2": """
        UPDATE accounts SET balance = 120.0 WHERE id = 1;
        UPDATE accounts SET balance = 30.0 WHERE id = 2;
        UPDATE accounts SET closed = 1 WHERE id = 3;
        INSERT INTO accounts (id, owner, balance) VALUES (4, 'Dee', 10.0);
    """,
    # a change nobody has loaded yet: verify notices
    "drift": "UPDATE accounts SET owner = 'Dee D.' WHERE id = 4;",
}

with sqlite3.connect("ledger.db") as db:
    db.executescript(DAYS[sys.argv[1]])
print(f"ledger.db: {sys.argv[1]}")
