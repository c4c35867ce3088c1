"""The first run's copy kept on disk as it is read (cdc/copy_parts.py): at the commit, parts a
replayed change touched lose the superseded rows, a rename applies to every part, untouched
parts pass as they are, and a truncate drops them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from floe.runtime.cdc.fold import TableFold

WHEN = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _fold(tmp_path: Path) -> TableFold:
    fold = TableFold(("id",), {"id": pa.int64(), "name": pa.string()}, spill=tmp_path / "w",
                     name="customers")
    for ids in ([1, 2, 3], [4, 5, 6]):
        fold.add_copy_batch(pa.record_batch({"id": pa.array(ids, pa.int64()),
                                             "name": [f"n{i}" for i in ids]}), 7, WHEN)
    return fold


def _rows(files: list[str]) -> list[tuple[int, str]]:
    table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive")
    name = "name" if "name" in table.column_names else "full_name"
    return sorted(zip(table["id"].to_pylist(), table[name].to_pylist(), strict=True))


def test_parts_are_files_not_memory_and_untouched_ones_pass_as_they_are(tmp_path: Path) -> None:
    fold = _fold(tmp_path)
    assert fold.copied == 6 and len(list((tmp_path / "w").iterdir())) == 2
    files = fold.copy_files(tmp_path)
    assert files == sorted(str(p) for p in (tmp_path / "w").iterdir())
    assert _rows(files) == [(i, f"n{i}") for i in range(1, 7)]


def test_a_replayed_change_supersedes_its_copied_row(tmp_path: Path) -> None:
    fold = _fold(tmp_path)
    fold.upsert(("id", "name"), (2, "changed"), 8, WHEN)
    fold.delete(("id", "name"), (5, "n5"), 9, WHEN)
    files = fold.copy_files(tmp_path)
    assert _rows(files) == [(1, "n1"), (3, "n3"), (4, "n4"), (6, "n6")]
    assert fold.upserts().to_pydict()["name"] == ["changed"]
    assert [k for k in fold.deleted_keys()] == [(5,)]


def test_a_rename_applies_to_every_part_and_a_truncate_drops_them(tmp_path: Path) -> None:
    fold = _fold(tmp_path)
    fold.rename("name", "full_name")
    files = fold.copy_files(tmp_path)
    assert all(pq.read_schema(f).names[:2] == ["id", "full_name"] for f in files)
    assert _rows(files) == [(i, f"n{i}") for i in range(1, 7)]
    assert fold.copied_rows([(4,)]) == {(4,): {"id": 4, "full_name": "n4",
                                               "_floe_lsn": 7, "_floe_committed_at": WHEN}}
    fold.truncate()
    assert fold.copy_files(tmp_path) == [] and not list((tmp_path / "w").iterdir())
