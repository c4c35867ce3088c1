"""transform: in the write modes the other tests do not cover (replace, history on a full
extract), and the engine's second fence: external access off, configuration locked."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from floe.runtime.transforms.engine import Engine, EngineError
from tests.runtime.test_transforms import PEOPLE, project_for, run


def _landing(tmp_path: Path, rows: list[dict[str, object]]) -> None:
    data = tmp_path / "landing"
    data.mkdir(exist_ok=True)
    (data / "people.jsonl").write_text("".join(json.dumps(p) + "\n" for p in rows))


def test_replace_lands_the_shaped_rows_each_run(tmp_path: Path) -> None:
    _landing(tmp_path, PEOPLE)
    project = project_for(tmp_path, """\
        - name: people
          source_type: filesystem
          destination_table: bronze.people
          write_mode: replace
          source_config: {bucket_url: landing, file_glob: "*.jsonl", format: jsonl}
        """, """\
    transform:
      columns: {initials: "left(first_name, 1) || left(last_name, 1)"}
      where: "status <> 'test'"
""")
    run(project)
    assert [(r["id"], r["initials"]) for r in project.read("bronze.people")] == [
        (1, "AL"), (3, "AT")]


def test_history_on_a_full_extract_keeps_shaped_versions(tmp_path: Path) -> None:
    _landing(tmp_path, PEOPLE)
    project = project_for(tmp_path, """\
        - name: people
          source_type: filesystem
          destination_table: bronze.people
          write_mode: merge
          merge_strategy: scd2
          primary_key: id
          history: {retire_absent: true}
          source_config: {bucket_url: landing, file_glob: "*.jsonl", format: jsonl}
        """, """\
    transform:
      columns:
        email: {hash: sha256, salt: "{{ secret('PII_SALT') }}"}
        full_name: "first_name || ' ' || last_name"
      where: "status <> 'test'"
""")
    run(project)
    (tmp_path / "landing" / "people.jsonl").unlink()
    _landing(tmp_path, [{**PEOPLE[0], "last_name": "King"}, {**PEOPLE[2], "status": "test"}])
    (tmp_path / "landing" / "people.jsonl").touch()
    run(project)
    versions = sorted(project.read("bronze.people"),
                      key=lambda r: (r["id"], r["_floe_valid_from"]))
    assert [(v["id"], v["full_name"], v["_floe_is_current"]) for v in versions] == [
        (1, "Ada Lovelace", False), (1, "Ada King", True), (3, "Alan Turing", False)]
    assert len({v["email"] for v in versions if v["id"] == 1}) == 1  # one hash, both versions


@pytest.mark.parametrize("select", [
    "(SELECT count(*) FROM read_csv('/etc/passwd'))",
    "(SELECT content FROM read_text('/etc/hostname'))",
])
def test_the_engine_cannot_reach_files(select: str) -> None:
    """Even SQL past the compiler's allowlist (it is not) could not read a file."""
    engine = Engine()
    with pytest.raises(EngineError, match="disabled by configuration"):
        engine.select([select], pa.table({"x": [1]}), {})


def test_the_engine_cannot_be_unlocked() -> None:
    engine = Engine()
    with pytest.raises(EngineError, match="locked"):
        engine.select(["1 FROM (SELECT 1); SET enable_external_access = true; SELECT 1"],
                      pa.table({"x": [1]}), {})
