"""Whatever bytes a user writes, the compiler answers with its own error type, never a crash."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from floe.compiler import CompileRequest, compile_project
from floe.errors import CompileError
from tests.compiler.artifacts_fixture import PROJECT_WITH_SECRETS

SEED = PROJECT_WITH_SECRETS.encode()
_SNIPPETS = [b"{{", b"}}", b"{%", b": ", b"- ", b"&a", b"*a", b"<<: *a", b"\t", b"\n  ", b"'",
             b'"', b"[", b"]", b"{", b"}", b"!!python/object:os.system", b"null", b"~", b"0x1F",
             b"write_mode: merge", b"{{ var('x') }}", b"\xff", b"---\n", b"...", b"#"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(SEED)
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        snippet = draw(st.sampled_from(_SNIPPETS) | st.binary(max_size=4))
        if action == "insert":
            data[position:position] = snippet
        elif action == "delete":
            del data[position:position + draw(st.integers(1, 20))]
        else:
            data[position:position + len(snippet)] = snippet
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_yaml_only_raises_compile_error(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "floe.yaml"
        path.write_bytes(raw)
        try:
            compile_project(CompileRequest(floe_file=path, output_dir=Path(folder) / "target",
                                           environ={}))
        except CompileError as exc:
            assert exc.diagnostics, "a CompileError always says where"
            for diagnostic in exc.diagnostics:
                assert diagnostic.line >= 1 and diagnostic.column >= 1
