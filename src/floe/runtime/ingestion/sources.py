"""Build dlt's own sources (rest_api, sql_database, filesystem) from a compiled source.

Nothing here connects: ``sql_database`` defers reflection and the others are lazy generators,
so building Dagster definitions or planning a run never touches a source.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dlt
from dlt.extract.source import DltSource

from floe.artifacts import BadRows, CompiledSource
from floe.logs import mask, register_secret_value
from floe.runtime.ingestion.columns import column_guard
from floe.runtime.ingestion.errors import (
    IngestionError,
    MissingSourceDependencyError,
    PipelineConfigurationError,
    config_error,
)
from floe.runtime.ingestion.landing import FileReader
from floe.secrets import MissingSecretError, resolve_secrets, secret_names

_EXTRAS = {
    "rest_api": "dlt[rest_api]", "sql_database": "dlt[sql-database]",
    "filesystem": "dlt[filesystem]",
}
# database drivers SQLAlchemy imports by URL scheme -> the package that provides them
DRIVER_PACKAGES = {
    "psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "pg8000": "pg8000",
    "asyncpg": "asyncpg", "pymysql": "pymysql", "MySQLdb": "mysqlclient",
    "mysql": "mysql-connector-python", "pyodbc": "pyodbc", "oracledb": "oracledb",
    "cx_Oracle": "cx_Oracle", "pymssql": "pymssql", "snowflake": "snowflake-sqlalchemy",
    "duckdb": "duckdb-engine", "connectorx": "connectorx",
}


def missing_driver(error: BaseException, source: CompiledSource
                   ) -> MissingSourceDependencyError | None:
    """A database driver missing for the URL's scheme, named with the package to install."""
    name = (getattr(error, "name", None) or "").split(".")[0]
    if not isinstance(error, ImportError) or name not in DRIVER_PACKAGES:
        return None
    return MissingSourceDependencyError(
        f"the database driver {name} that this URL needs is not installed: pip install "
        f"'{DRIVER_PACKAGES[name]}' (or pick an installed driver in the URL scheme, e.g. "
        "postgresql+psycopg2://)", source_type=source.source_type,
        destination_table=source.destination_table, pipeline_name=source.pipeline_name)


def resolved_config(source: CompiledSource, environ: Mapping[str, str] | None = None
                    ) -> dict[str, Any]:
    """source_config with ``${secret:NAME}`` replaced from the environment (never log it)."""
    env = os.environ if environ is None else environ
    try:
        config: dict[str, Any] = resolve_secrets(source.source_config, env)
    except MissingSecretError as exc:
        raise PipelineConfigurationError(
            str(exc), source_type=source.source_type,
            destination_table=source.destination_table,
            pipeline_name=source.pipeline_name) from None
    for name in secret_names(source.source_config):
        register_secret_value(env[name])
    return config


def local_url(url: str, project_root: Path) -> str:
    """Relative folders and sqlite files are relative to the project, like everything else."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return "sqlite:///" + str((project_root / url.removeprefix("sqlite:///")).resolve())
    if "://" in url:
        return url
    return str((project_root / url).resolve())


# URL schemes users write -> the driver floe installs for them (SQLAlchemy's own default for
# mysql:// is mysqlclient, a C extension that needs the MySQL client headers to build)
_DEFAULT_DRIVERS = {"mysql": "pymysql", "mariadb": "pymysql"}


def database_url(url: str, project_root: Path) -> str:
    """A SQLAlchemy URL as a user writes it, ready for ``create_engine``: relative sqlite files
    under the project, and ``mysql://`` / ``mariadb://`` read with PyMySQL (a driver named in
    the URL, e.g. ``mysql+mysqldb://``, is kept)."""
    url = local_url(url, project_root)
    scheme, sep, rest = url.partition("://")
    if sep and scheme in _DEFAULT_DRIVERS:
        scheme = f"{scheme}+{_DEFAULT_DRIVERS[scheme]}"
    if sep and scheme.split("+")[0] in ("mysql", "mariadb") and "init_command" not in rest:
        # TIMESTAMP values in UTC whatever the server's time zone (they are stored in UTC)
        rest += ("&" if "?" in rest else "?") + "init_command=SET%20time_zone%3D%27%2B00%3A00%27"
    return f"{scheme}{sep}{rest}" if sep else url


def _rest_api(config: dict[str, Any], source: CompiledSource) -> DltSource:
    """The cursor goes into each endpoint's own ``incremental`` (dlt filters on it and binds it
    to a request parameter when the endpoint names one with ``start_param``)."""
    from dlt.sources.rest_api import rest_api_source

    if source.cursor_field:
        cursor: dict[str, Any] = {"cursor_path": source.cursor_field}
        if source.cursor_initial_value is not None:
            cursor["initial_value"] = source.cursor_initial_value
        resources = []
        for resource in config.get("resources", []):
            if isinstance(resource, str):
                resource = {"name": resource, "endpoint": {"path": resource}}
            endpoint = resource.get("endpoint")
            if not isinstance(endpoint, dict):
                endpoint = {"path": endpoint or resource["name"]}
            # an endpoint may bind the cursor to a query parameter (start_param) itself
            endpoint = {**endpoint, "incremental": {**cursor, **endpoint.get("incremental", {})}}
            resources.append({**resource, "endpoint": endpoint})
        config = {**config, "resources": resources}
    return rest_api_source(config)  # type: ignore[arg-type]


def _arrow_tuple_loader() -> type[Any]:
    """dlt's own pyarrow ``TableLoader`` minus SQLAlchemy ``Row`` objects.

    Building a ``Row`` per record costs as much as the fetch itself (1M Postgres rows: 4.7 s
    through dlt's loader, 2.9 s here, the same as psycopg2 straight into Arrow).  When the
    dialect has no result processors the DBAPI tuples are what a Row would hold, so they go
    straight into dlt's ``row_tuples_to_arrow``; otherwise (e.g. SQLite dates) dlt's path runs.
    """
    from dlt.sources.sql_database import TableLoader
    from dlt.sources.sql_database.arrow_helpers import row_tuples_to_arrow

    class ArrowTupleLoader(TableLoader):
        def _convert_result(self, result: Any, backend_kwargs: dict[str, Any]) -> Any:
            metadata = getattr(result, "_metadata", None)
            if (not hasattr(result, "_fetchmany_impl")
                    or getattr(metadata, "_effective_processors", True) is not None):
                yield from super()._convert_result(result, backend_kwargs)
                return
            names = list(result.keys())
            for name in names:
                self.columns.setdefault(name, {"name": name})
            columns = {name: self.columns[name] for name in names}
            # json/jsonb stays JSON text: Arrow would infer a struct across rows and turn
            # {} into {"a": null, "b": null} (found by floe verify)
            as_json = [i for i, name in enumerate(names)
                       if columns[name].get("data_type") == "json"]
            for i in as_json:
                columns[names[i]] = {**columns[names[i]], "data_type": "text"}
            tz = backend_kwargs.get("tz", "UTC")
            while rows := result._fetchmany_impl(self.chunk_size):
                if as_json:
                    rows = [_json_text(row, as_json) for row in rows]
                yield row_tuples_to_arrow(rows, columns=columns, tz=tz)

    return ArrowTupleLoader


def _json_text(row: tuple[Any, ...], at: list[int]) -> tuple[Any, ...]:
    values = list(row)
    for i in at:
        if values[i] is not None and not isinstance(values[i], str):
            values[i] = json.dumps(values[i], default=str, ensure_ascii=False)
    return tuple(values)


def default_backend(url: str) -> str:
    """PostgreSQL is read with ADBC (binary COPY into Arrow), MySQL/MariaDB with connectorx
    (both 5-20x the row-by-row drivers); other databases with pyarrow."""
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme in ("postgres", "postgresql"):
        return "adbc"
    return "connectorx" if scheme in ("mysql", "mariadb") else "pyarrow"


def _is_mysql(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0] in ("mysql", "mariadb")


def _table_loader(backend: str) -> type[Any] | None:
    if backend == "adbc":
        try:
            import adbc_driver_postgresql  # noqa: F401
        except ImportError:
            raise MissingSourceDependencyError(
                "backend adbc needs the ADBC PostgreSQL driver: pip install "
                "'adbc-driver-postgresql' (or set backend: pyarrow)") from None
        from floe.runtime.ingestion.adbc_loader import AdbcTableLoader

        return AdbcTableLoader
    if backend == "connectorx-mysql":
        from floe.runtime.ingestion.mysql_loader import MySQLTableLoader

        return MySQLTableLoader
    # the other backends (sqlalchemy, pandas, connectorx) keep dlt's own loaders
    return _arrow_tuple_loader() if backend == "pyarrow" else None


def bronze_type(sql_type: Any) -> Any:
    """The reflected type a column is read as, where SQLAlchemy's own would land wrong:

    - MySQL ``BIGINT UNSIGNED`` (up to 2^64 - 1, past int64): ``decimal(20, 0)``, exact;
    - MySQL ``DOUBLE``/``FLOAT`` reflect with ``asdecimal``: read as floats, not decimals;
    - MySQL ``TIMESTAMP`` is stored in UTC (floe's MySQL sessions read in UTC): timestamptz;
    - MySQL ``SET`` would arrive as a Python set (a JSON list in any order): its text, as stored.
    """
    import sqlalchemy
    from sqlalchemy.dialects import mysql

    if getattr(sql_type, "unsigned", False) and isinstance(sql_type, sqlalchemy.BigInteger):
        return sqlalchemy.Numeric(20, 0)
    if isinstance(sql_type, sqlalchemy.Float) and getattr(sql_type, "asdecimal", False):
        return sqlalchemy.Double()
    if isinstance(sql_type, mysql.TIMESTAMP):
        return sqlalchemy.DateTime(timezone=True)
    if isinstance(sql_type, mysql.SET):
        return sqlalchemy.String()
    return sql_type


def bronze_types(table: Any) -> Any:
    """Each reflected column read as ``bronze_type`` says: the type decides both the Bronze
    column and how the driver's values are converted (SQLAlchemy's result processors)."""
    for column in table.columns:
        column.type = bronze_type(column.type)
    return table


_OWN_LOADERS = ("adbc", "connectorx-mysql")


def sql_backend(config: Mapping[str, Any], project_root: Path) -> str:
    """The backend a sql_database source reads with (``config`` resolved)."""
    credentials = config["credentials"]
    if isinstance(credentials, str):
        credentials = database_url(credentials, project_root)
    backend: str = config.get("backend") or (
        default_backend(credentials) if isinstance(credentials, str) else "pyarrow")
    if backend == "connectorx" and isinstance(credentials, str) and _is_mysql(credentials):
        backend = "connectorx-mysql"  # floe's own loader: dlt's connectorx path fails on
        # zero dates and types MySQL columns otherwise than Bronze does
    return backend


def shaped_at_extract(source: CompiledSource, config: Mapping[str, Any],
                      project_root: Path) -> bool:
    """Whether a transform can shape Arrow items as dlt extracts them: not where dlt's
    reflected column hints type the rows (they would bring dropped columns back as nulls);
    those are shaped from the normalized files."""
    return source.source_type != "sql_database" or \
        sql_backend(config, project_root) in _OWN_LOADERS


def _sql_database(config: dict[str, Any], project_root: Path, shaped: bool = False
                  ) -> DltSource:
    from dlt.sources.sql_database import sql_database

    credentials = config["credentials"]
    if isinstance(credentials, str):
        credentials = database_url(credentials, project_root)
    backend = sql_backend(config, project_root)
    dlt_backend: Any = "pyarrow" if backend in ("adbc", "connectorx-mysql") else backend
    return sql_database(
        credentials=credentials,
        schema=config.get("schema"),
        table_names=config.get("tables"),
        backend=dlt_backend,
        chunk_size=config.get("chunk_size", 100_000),
        # floe's own loaders type Arrow from the table itself; under a transform, dlt's
        # column hints would bring back as nulls the columns it drops or renames
        reflection_level=config.get("reflection_level", "minimal" if shaped and backend in
                                    _OWN_LOADERS else "full"),
        include_views=config.get("include_views", False),
        # listed tables are reflected when first read; a whole schema has to be listed, which
        # happens here, at run time (Dagster definitions use the compiled schema asset instead)
        defer_table_reflect=bool(config.get("tables")),
        table_loader_class=_table_loader(backend),
        table_adapter_callback=bronze_types,
    )


def landing_reader(config: Mapping[str, Any], bad_rows: BadRows = "fail") -> FileReader:
    """A reader for one load of a filesystem source (it keeps the load's column types)."""
    return FileReader(file_format(config), bad_rows, str(config.get("delimiter", ",")),
                      str(config.get("encoding", "utf8")))


def read_file(item: Any, reader: FileReader) -> Iterator[Any]:
    """One landing file (a dlt ``FileItemDict``) as Arrow."""
    with item.open() as handle:
        yield from reader.read(str(item["file_name"]), handle, item.get("size_in_bytes"))


@dlt.transformer(standalone=True)
def read_arrow(items: Any, reader: FileReader) -> Any:
    """Read listed files straight into Arrow: dlt's own readers go through pandas or dicts,
    which costs several times more in extract + normalize.  Oldest first, as landed: the
    load's first file sets its column types."""
    for item in sorted(items, key=lambda item: item["modification_date"]):
        yield from read_file(item, reader)


def file_format(config: Mapping[str, Any]) -> str:
    glob = str(config.get("file_glob", "*"))
    return str(config.get("format") or glob.rsplit(".", 1)[-1])


def _files(config: dict[str, Any], project_root: Path) -> Any:
    """dlt's ``filesystem`` resource: lists the matching files (lazily) with their mtimes."""
    from dlt.sources.filesystem import filesystem

    bucket_url = local_url(str(config["bucket_url"]), project_root)
    if "://" not in bucket_url:
        bucket_url = Path(bucket_url).as_uri()
    extra = {"credentials": config["credentials"]} if config.get("credentials") else {}
    return filesystem(bucket_url=bucket_url, file_glob=str(config.get("file_glob", "*")),
                      **extra)


def list_files(source: CompiledSource, project_root: Path,
               environ: Mapping[str, str] | None = None) -> list[tuple[str, float]]:
    """(file URL, modification time as a UNIX timestamp) of the files a filesystem source
    would read now: what a new-files sensor compares against its cursor."""
    return [(str(item["file_url"]), item["modification_date"].timestamp())
            for item in landing_files(resolved_config(source, environ), project_root)]


def landing_files(config: dict[str, Any], project_root: Path) -> list[Any]:
    """The files a filesystem source would read now (dlt ``FileItemDict``s, oldest first)."""
    items = [item for page in _files(config, project_root)
             for item in (page if isinstance(page, list) else [page])]
    return sorted(items, key=lambda item: item["modification_date"])


def _filesystem(config: dict[str, Any], source: CompiledSource, project_root: Path,
                reader: FileReader) -> DltSource:
    files = _files(config, project_root)
    if source.write_mode != "replace":
        # a landing folder only grows: read the files that are new or changed since the last
        # committed load (the file cursor is kept with the table, like any other cursor)
        files.apply_hints(incremental=dlt.sources.incremental("modification_date"))
    resource = (files | read_arrow(reader)).with_name(source.resources[0])

    @dlt.source(name=source.name)
    def landing() -> Any:
        return resource

    return landing()


def empty_landing(source: CompiledSource, project_root: Path,
                  environ: Mapping[str, str] | None = None) -> str:
    """Why a filesystem load found no file: a folder that does not exist is an error naming it;
    otherwise the answer says what the glob missed and what is there instead."""
    config = resolved_config(source, environ)
    written = str(config["bucket_url"])
    url = local_url(written, project_root)
    if "://" not in url and not Path(url).is_dir():
        raise config_error(source, f"landing folder {written} does not exist ({url}): create "
                           "it, or fix source_config.bucket_url")
    try:
        there = [str(item["relative_path"]) for item in landing_files(
            {**config, "file_glob": "**/*"}, project_root)]
    except Exception as exc:  # a bucket that does not exist, no access...
        raise config_error(source, f"cannot list landing folder {written}: "
                           f"{type(exc).__name__}: {mask(str(exc))}") from None
    glob = str(config.get("file_glob", "*"))
    shown = ", ".join(sorted(there)[:5]) + (", ..." if len(there) > 5 else "")
    return (f"no file matches {glob} in {written}"
            + (f" — {len(there)} other file(s) there: {shown}" if there else " — it is empty"))


def build_source(source: CompiledSource, project_root: Path,
                 environ: Mapping[str, str] | None = None, reader: FileReader | None = None
                 ) -> DltSource:
    """The dlt source for ``source``, with hints for primary key and incremental cursor.
    A filesystem source reads with ``reader`` (the caller keeps it to see its bad rows)."""
    config = resolved_config(source, environ)
    try:
        if source.source_type == "rest_api":
            dlt_source = _rest_api(config, source)
        elif source.source_type == "sql_database":
            dlt_source = _sql_database(config, project_root, source.transform is not None)
        elif source.source_type == "python":
            from floe.runtime.python_source import python_source

            dlt_source = python_source(config, source, project_root)
        else:
            reader = reader or landing_reader(config, source.bad_rows)
            dlt_source = _filesystem(config, source, project_root, reader)
    except IngestionError:
        raise
    except ImportError as exc:
        driver = missing_driver(exc, source)
        if driver is not None:
            raise driver from exc
        raise MissingSourceDependencyError(
            f"the {source.source_type} source needs an optional package ({exc.name}): "
            f"pip install '{_EXTRAS[source.source_type]}'",
            source_type=source.source_type, pipeline_name=source.pipeline_name) from exc
    python = source.source_type == "python"
    for name, resource in dlt_source.resources.items():
        guard = column_guard(source, source.table_for(name),
                             (lambda: reader.current_file) if reader is not None else None)
        if guard is not None:  # added before the cursor hint: dlt's incremental step follows
            resource.add_map(guard)
        # a python resource keeps its own table name (it may route items to several tables)
        # unless floe.yaml names the table; whatever floe.yaml sets wins over its own hints
        hints: dict[str, Any] = {} if python and source.table is None else {
            "table_name": source.table_for(name)}
        if source.primary_key:
            hints["primary_key"] = list(source.primary_key)
        wrapper = resource.incremental
        if (source.cursor_field and source.source_type != "rest_api"
                and (python or getattr(wrapper, "incremental", None) is None)):
            hints["incremental"] = dlt.sources.incremental(
                source.cursor_field, initial_value=source.cursor_initial_value)
        resource.apply_hints(**hints)
    return dlt_source
