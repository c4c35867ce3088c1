"""The columnar timeline rebuild (iceberg/history.py) against a plain model of SCD2: after
every load, Bronze's versions equal the model replayed over every event so far (random keys,
values, times, deletes, late rows, same-value re-sends; several loads)."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pyarrow as pa

from floe.runtime.iceberg.history import (
    IS_CURRENT,
    VALID_FROM,
    VALID_TO,
    rebuild_columnar,
    with_history_fields,
)

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
SCHEMA = with_history_fields(pa.schema([("id", pa.int64()), ("email", pa.string()),
                                        ("note", pa.string())]))


def model(versions: set[tuple[Any, ...]], batch: list[tuple[int, dt.datetime, int,
                                                          str | None, str]]
          ) -> set[tuple[Any, ...]]:
    """The same rules, one row at a time: (id, valid_from, valid_to, email) after a load of
    ``batch`` events (id, time, arrival, email or None for a delete, untracked note) onto
    ``versions``.  A re-send equal to the version before it is dropped when it arrives."""
    touched = {e[0] for e in batch}
    out = {v for v in versions if v[0] not in touched}
    for key in touched:
        timeline: list[tuple[dt.datetime, int, str | None]] = []
        mine = sorted((v for v in versions if v[0] == key),
                      key=lambda v: (v[1], v[2] is None, v[2] or v[1]))
        for number, (_, start, end, email) in enumerate(mine):
            timeline.append((start, -len(mine) + number - 1000, email))
            following = mine[number + 1][1] if number + 1 < len(mine) else None
            if end is not None and end != following:
                timeline.append((end, -len(mine) + number - 500, None))
        timeline += [(e[1], e[2], e[3]) for e in batch if e[0] == key]
        timeline.sort(key=lambda e: (e[0], e[1]))
        open_version: list[Any] | None = None
        built: list[list[Any]] = []
        for at, _, email in timeline:
            if email is None:
                if open_version is not None:
                    open_version[2] = at
                open_version = None
                continue
            if open_version is not None and open_version[3] == email:
                continue
            if open_version is not None:
                open_version[2] = at
            open_version = [key, at, None, email]
            built.append(open_version)
        out |= {tuple(v) for v in built if v[2] is None or v[2] > v[1]}  # visible ones
    return out


def test_every_load_leaves_the_model_s_timeline() -> None:
    chance = random.Random(11)
    for _ in range(300):
        bronze = SCHEMA.empty_table()
        expected: set[tuple[Any, ...]] = set()
        arrival = 0
        for _load in range(chance.randint(1, 5)):
            batch = []
            for _row in range(chance.randint(1, 8)):
                key = chance.randint(1, 3)
                at = T0 + dt.timedelta(days=chance.randint(0, 12))
                email = None if chance.random() < 0.2 else chance.choice("abc")
                batch.append((key, at, arrival, email, chance.choice("xyz")))
                arrival += 1
            expected = model(expected, batch)
            touched = {e[0] for e in batch}
            existing = bronze.filter(pa.array([r in touched for r in bronze["id"].to_pylist()],
                                              pa.bool_()))
            rest = bronze.filter(pa.array([r not in touched for r in bronze["id"].to_pylist()],
                                          pa.bool_()))
            incoming = pa.table({"id": pa.array([e[0] for e in batch], pa.int64()),
                                 "email": [e[3] or "" for e in batch],
                                 "note": [e[4] for e in batch]})
            starts = pa.array([e[1] for e in batch], pa.timestamp("us", tz="UTC"))
            deleted = pa.array([e[3] is None for e in batch])
            out, _, _ = rebuild_columnar(existing, incoming, starts, deleted, ["id"], ["email"],
                                         [], SCHEMA)
            bronze = pa.concat_tables([rest, out])
            found = {(r["id"], r[VALID_FROM], r[VALID_TO], r["email"])
                     for r in bronze.to_pylist()}
            assert found == expected, (batch, found, expected)
            assert all(r[IS_CURRENT] == (r[VALID_TO] is None) for r in bronze.to_pylist())
