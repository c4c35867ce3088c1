"""mkdocs hook: the reference pages are generated from the code at every build (floe.reference),
so the site cannot drift from it; the copies committed under docs/reference/ (for GitHub) are
replaced by what the code says now, and a test fails when the two differ."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

from floe.reference import pages

_REPO = Path(__file__).resolve().parents[1]


def on_files(files: Files, config: Any, **_: Any) -> Files:
    changelog = (_REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    for name, text in pages(changelog).items():
        uri = f"reference/{name}"
        existing = files.get_file_from_path(uri)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, uri, content=text))
    return files
