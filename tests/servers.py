"""Real servers for integration tests, started on loopback by the suite itself.

A test that needs one and cannot get it fails (never skips): the error says what was missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PG_BIN_DIRS = [Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Postgres:
    port: int
    user: str = "floe"
    password: str = "floe-test-pw"
    database: str = "shop"

    @property
    def url(self) -> str:
        return (f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/"
                f"{self.database}")

    def execute(self, sql: str) -> None:
        import psycopg2

        with psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user,
                              password=self.password, dbname=self.database) as conn:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(sql)
        conn.close()


def _pg_bin() -> Path:
    for folder in PG_BIN_DIRS:
        if (folder / "initdb").exists():
            return folder
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql-15")


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    """initdb + pg_ctl in a temp dir, as the `postgres` user when we are root."""
    bin_dir = _pg_bin()
    root = Path(tempfile.mkdtemp(prefix="floe-pg-"))
    data = root / "data"
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(root, "postgres")
        root.chmod(0o755)
    pw_file = root / "pw"
    pg = Postgres(port=free_port())
    pw_file.write_text(pg.password)
    if as_root:
        shutil.chown(pw_file, "postgres")

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, cwd=root)

    run(str(bin_dir / "initdb"), "-D", str(data), "-U", pg.user, "--pwfile", str(pw_file),
        "-A", "scram-sha-256", "--no-sync")
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
        f"-p {pg.port} -h 127.0.0.1 -k {root} -F", "start")
    try:
        _createdb(pg)
        yield pg
    finally:
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def _createdb(pg: Postgres) -> None:
    import psycopg2

    deadline = time.monotonic() + 30
    while True:
        try:
            conn = psycopg2.connect(host="127.0.0.1", port=pg.port, user=pg.user,
                                    password=pg.password, dbname="postgres")
            break
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {pg.database}")
    conn.close()
