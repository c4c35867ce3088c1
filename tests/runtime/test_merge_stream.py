"""A merge streams its load (or, for a sorted table, reads it whole): across several files the
last row sent per key wins (upsert), or every row stays (delete-insert); delete markers remove
keys; integer, text and two-column keys are matched alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from floe.runtime.iceberg.commit import TableLoad, commit_table_load


@pytest.mark.parametrize("sort_by", [(), ("id",)], ids=["streamed", "sorted whole"])
@pytest.mark.parametrize("key", ["int", "text", "pair"])
@pytest.mark.parametrize("strategy", ["upsert", "delete-insert"])
def test_a_merge_of_several_files(tmp_path: Path, key: str, strategy: str,
                                  sort_by: tuple[str, ...]) -> None:
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db",
                         warehouse=(tmp_path / "w").as_uri())
    catalog.create_namespace("bronze")

    def ids(values: list[int]) -> dict[str, Any]:
        if key == "int":
            return {"id": pa.array(values, pa.int64())}
        if key == "text":
            return {"id": [f"k{v}" for v in values]}
        return {"id": pa.array(values, pa.int64()), "region": ["eu"] * len(values)}

    primary_key = ("id", "region") if key == "pair" else ("id",)

    def commit(name: str, files: list[dict[str, Any]], mode: str) -> None:
        paths = []
        for number, columns in enumerate(files):
            path = tmp_path / f"{name}{number}.parquet"
            pq.write_table(pa.table(columns), path)
            paths.append(str(path))
        commit_table_load(catalog, TableLoad(
            identifier=("bronze", "t"), files=paths, write_mode=mode,  # type: ignore[arg-type]
            merge_strategy=strategy, primary_key=primary_key,  # type: ignore[arg-type]
            schema_contract="evolve", state=None, load_id=name, delete_column="gone",
            sort_by=sort_by))

    commit("base", [{**ids([1, 3, 4]), "v": ["old1", "old3", "old4"],
                     "gone": [False] * 3}], "append")
    commit("load", [{**ids([1, 2, 1]), "v": ["a", "b", "a2"], "gone": [False] * 3},
                    {**ids([2, 3, 1]), "v": ["b2", "c", "a3"], "gone": [False, True, False]}],
           "merge")
    found = sorted((str(r["id"]), r["v"]) for r in
                   catalog.load_table(("bronze", "t")).scan().to_arrow().to_pylist())
    name = (lambda v: f"k{v}") if key == "text" else str
    if strategy == "upsert":
        expected = [(name(1), "a3"), (name(2), "b2"), (name(4), "old4")]
    else:
        expected = [(name(1), "a"), (name(1), "a2"), (name(1), "a3"), (name(2), "b"),
                    (name(2), "b2"), (name(4), "old4")]
    assert found == sorted(expected)
