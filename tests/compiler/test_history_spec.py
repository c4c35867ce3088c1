"""merge_strategy scd2 and history: in floe.yaml: defaults, and every mistake located."""

from __future__ import annotations

from pathlib import Path

from tests.compiler.helpers import compile_text, errors_of

HISTORY = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: crm, version: 1.0.0}
sources:
  - name: people
    source_type: sql_database
    destination_table: bronze
    write_mode: merge
    merge_strategy: scd2
    primary_key: id
    source_config: {credentials: "sqlite:///crm.db", tables: [people]}
"""


def test_scd2_alone_keeps_history_with_its_defaults(tmp_path: Path) -> None:
    [source] = compile_text(tmp_path, HISTORY).sources
    assert source.merge_strategy == "scd2"
    assert source.history is not None
    assert (source.history.valid_from_column, source.history.track_columns,
            source.history.retire_absent) == (None, (), False)
    tuned = HISTORY.replace("    source_config:", "    history: {valid_from_column: updated_at, "
                            "track_columns: [email], retire_absent: true}\n    source_config:")
    [source] = compile_text(tmp_path, tuned).sources
    assert source.history is not None
    assert source.history.model_dump() == {"valid_from_column": "updated_at",
                                           "track_columns": ("email",), "retire_absent": True}


def test_history_mistakes_are_located(tmp_path: Path) -> None:
    without_scd2 = HISTORY.replace("    merge_strategy: scd2\n", "").replace(
        "    source_config:", "    history: {track_columns: [email]}\n    source_config:")
    assert errors_of(tmp_path, without_scd2) == [
        "10:5: sources[0].history: history applies to merge_strategy scd2, which this source "
        "does not use"]
    incremental = HISTORY.replace("    source_config:", "    cursor_field: updated_at\n"
                                  "    history: {retire_absent: true}\n    source_config:")
    assert errors_of(tmp_path, incremental) == [
        "12:30: sources[0].history.retire_absent: retire_absent closes every key a load does "
        "not send, but with cursor_field each load sends only the rows changed since the last: "
        "every other row would be retired"]
    no_key = HISTORY.replace("    primary_key: id\n", "")
    assert errors_of(tmp_path, no_key) == [
        "8:17: sources[0].write_mode: write_mode merge needs a primary_key"]
    unknown = HISTORY.replace("    source_config:", "    history: {valid_from: x}\n"
                              "    source_config:")
    assert [e.split(":")[2].strip() for e in errors_of(tmp_path, unknown)] == [
        "sources[0].history.valid_from"]
