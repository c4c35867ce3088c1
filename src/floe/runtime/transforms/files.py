"""A dlt load's normalized files, transformed: each file read, shaped, and written again
(Bronze data files: compressed like dlt's), with the keys ``where`` left out kept apart so a
merge can delete them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from floe.runtime.transforms.table import TableTransform


@dataclass
class TransformedFiles:
    files: list[str] = field(default_factory=list)
    filtered_keys: list[str] = field(default_factory=list)  # parquet files of left-out keys
    rows: int = 0


def transform_files(transform: TableTransform, files: Sequence[str], table_name: str,
                    key: Sequence[str], workdir: Path) -> TransformedFiles:
    done = TransformedFiles()
    workdir.mkdir(parents=True, exist_ok=True)
    for number, path in enumerate(files):
        applied = transform.apply(pq.read_table(path), table_name, key)
        target = workdir / f"{Path(path).stem}.{number}.parquet"
        pq.write_table(applied.rows, target)
        done.files.append(str(target))
        done.rows += applied.rows.num_rows
        if applied.filtered.num_rows and key:
            left_out = workdir / f"{Path(path).stem}.{number}.filtered.parquet"
            pq.write_table(_not_kept(applied.filtered, applied.rows, key), left_out)
            done.filtered_keys.append(str(left_out))
    return done


def _not_kept(filtered: pa.Table, kept: pa.Table, key: Sequence[str]) -> pa.Table:
    """Keys left out and not also sent again in the same file (its passing row upserts)."""
    if not kept.num_rows:
        return filtered
    return filtered.join(kept.select(list(key)), keys=list(key), join_type="left anti")
