"""The docs site: its generated references match the code, every key and every error message
is documented, every YAML block compiles (a source entry, a floe.yaml or platform.yaml
fragment), every shell block marked runnable runs, the README stays short with links that
resolve, and the built site renders in headless Chromium (landing page, floe.yaml reference,
search)."""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from ruamel.yaml import YAML

from floe.compiler import CompileRequest, compile_project
from floe.reference import error_catalogue, pages, schema_keys
from tests.examples.docs import REPO

DOCS = REPO / "docs"
WRITTEN = [p for p in sorted(DOCS.rglob("*.md")) if "reference" not in p.parts]
HEADER = "apiVersion: floe.dev/v1\nkind: DataProduct\nmetadata: {name: docs, version: 1.0.0}\n"
PLATFORM = "apiVersion: floe.dev/v1\nkind: Platform\n"


def test_committed_references_are_what_the_code_says() -> None:
    generated = pages((REPO / "CHANGELOG.md").read_text())
    for name, text in generated.items():
        committed = (DOCS / "reference" / name).read_text()
        assert committed == text, f"docs/reference/{name} is stale: run `make schemas`"


def test_every_key_has_a_description() -> None:
    for schema in ("floe.schema.json", "platform.schema.json"):
        undocumented = [k.path for k in schema_keys(schema) if not k.description]
        assert undocumented == [], schema


def test_every_error_message_has_a_fix() -> None:
    """A new user-facing error needs a hint, a message that says what to do, or an entry in
    floe.reference.FIXES."""
    entries = error_catalogue()
    assert len(entries) > 150
    missing = [f"{e.where}: {e.message}" for e in entries if not e.fix]
    assert missing == []


def _blocks(kind: str) -> Iterator[tuple[Path, str, str]]:
    """(page, block, the line before it) for every fenced block of ``kind``."""
    for page in WRITTEN:
        text = page.read_text()
        for match in re.finditer(rf"^([^\n]*)\n```{kind}\n(.*?)^```", text, re.S | re.M):
            yield page, match.group(2), match.group(1)


def _compile(root: Path, floe_yaml: str, platform: str | None = None) -> None:
    (root / "floe.yaml").write_text(floe_yaml)
    environment = None
    if platform is not None:
        (root / "platform.yaml").write_text(platform)
        environment = next(iter(YAML(typ="safe").load(platform)["environments"]))
    for module, function in re.findall(r"function: ([\w.]+):(\w+)", floe_yaml):
        path = root / (module.replace(".", "/") + ".py")  # a python source's module
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"def {function}(**kwargs):\n    return []\n")
    compile_project(CompileRequest(floe_file=root / "floe.yaml", output_dir=root / "target",
                                   environment=environment, environ={}))


@pytest.mark.parametrize(("page", "block"), [
    pytest.param(page, block, id=f"{page.relative_to(DOCS)}:{index}")
    for index, (page, block, _) in enumerate(_blocks("yaml"))])
def test_yaml_blocks_compile(tmp_path: Path, page: Path, block: str) -> None:
    data = YAML(typ="safe").load(block)
    if "load_from" in block or "run_launcher" in block:  # Dagster's own files
        assert isinstance(data, dict)
        return
    if "kind: Platform" in block:  # a whole platform.yaml
        _compile(tmp_path, HEADER + "platform: platform.yaml\nsources: []\n", block)
    elif block.startswith("apiVersion: floe.dev/v1"):
        _compile(tmp_path, block)
    elif block.startswith("- name:"):
        (tmp_path / "landing").mkdir()
        _compile(tmp_path, HEADER + "sources:\n" + textwrap.indent(block, "  "))
    elif "environments:" in block:
        _compile(tmp_path, HEADER + "platform: platform.yaml\nsources: []\n",
                 PLATFORM + textwrap.dedent(block))
    else:  # a fragment of floe.yaml's top level (defaults:, notifications:, sources:)
        _compile(tmp_path, HEADER + ("" if "\nsources:" in f"\n{block}" else "sources: []\n")
                 + block)


def test_runnable_shell_blocks_run(tmp_path: Path) -> None:
    """Blocks after `<!-- runnable -->` run, in a scratch folder, in order."""
    runnable = [(page, block) for page, block, before in _blocks("bash")
                if before.strip() == "<!-- runnable -->"]
    assert runnable, "no runnable block: mark at least the getting-started ones"
    bin_dir = str(Path(sys.executable).parent)
    for page, block in runnable:
        script = "set -e\n" + "\n".join(
            line for line in block.splitlines()
            if not line.startswith(("make ", "floe dev")))
        result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True,
                                text=True, timeout=300,
                                env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)})
        assert result.returncode == 0, f"{page}: {result.stdout}{result.stderr}"


def test_readme_is_short_and_its_links_resolve() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    links = re.findall(r"\]\(((?:docs|examples)/[^)#]*|CHANGELOG\.md)\)", readme)
    assert len(links) > 15
    for link in links:
        assert (REPO / link).exists(), link


# the built site, in a browser ---------------------------------------------------------------

class _Recording(http.server.SimpleHTTPRequestHandler):
    requested: ClassVar[list[str]] = []  # the paths the browser asked for

    def log_message(self, format: str, *args: object) -> None:
        type(self).requested.append(self.path)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    built = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [str(Path(sys.executable).with_name("mkdocs")), "build", "--strict", "--quiet",
         "--site-dir", str(built)], cwd=REPO, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    handler = functools.partial(_Recording, directory=str(built))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    _SITES[url] = built
    try:
        yield url
    finally:
        server.shutdown()


_SITES: dict[str, Path] = {}


def site_dir(url: str) -> Path:
    return _SITES[url]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise RuntimeError("chromium is missing: run 'sudo apt-get install chromium' "
                           "(.ci/servers.sh does)")
    return found


def _browse(url: str, *extra: str) -> str:
    result = subprocess.run(
        [_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu",
         "--disable-dev-shm-usage", "--virtual-time-budget=8000", *extra, url],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_the_site_renders_in_a_browser(site: str, tmp_path: Path) -> None:
    landing = _browse(f"{site}/", "--dump-dom")
    assert "floe turns a declarative" in landing and "Getting started" in landing
    reference = _browse(f"{site}/reference/floe-yaml/", "--dump-dom")
    assert "sources[].transform.where" in reference and "freshness_sla" in reference
    _Recording.requested.clear()
    searching = _browse(f"{site}/?q=freshness_sla", "--dump-dom")
    assert 'data-md-component="search-query"' in searching and "md-search-result" in searching
    # the page opened its search: the worker started and fetched the index
    assert any(p.startswith("/assets/javascripts/workers/search") for p in _Recording.requested)
    assert "/search/search_index.json" in _Recording.requested
    index = (Path(site_dir(site)) / "search" / "search_index.json").read_text()
    assert "freshness_sla" in index and "transform.where" in index
    shot = tmp_path / "landing.png"  # kept with the test's files, never committed
    _browse(f"{site}/", f"--screenshot={shot}", "--window-size=1280,900")
    assert shot.stat().st_size > 10_000
