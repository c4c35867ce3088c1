"""What a load reports back: to the CLI table, to Dagster metadata, to OTel spans."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TableResult:
    table: str  # namespace.table
    resource: str | None
    rows_loaded: int
    bytes_written: int
    snapshot_id: int | None
    total_rows: int | None = None  # rows in the table after this load
    new_columns: tuple[str, ...] = ()
    type_changes: tuple[str, ...] = ()  # "amount: long -> double (amount__v_double)"
    renamed: tuple[str, ...] = ()  # "email -> email_address" (PostgreSQL attnum)
    versions_opened: int | None = None  # history (scd2) tables: versions this load opened
    versions_closed: int | None = None  # ... and closed
    delete_files_added: int = 0  # merge-on-read delete files this load wrote
    events: tuple[tuple[str, int], ...] = ()  # CDC: changes applied by kind


@dataclass(frozen=True)
class CdcLag:
    """Where a CDC source stands after a run: bytes of its log not yet applied, bytes the
    source keeps for it (a PostgreSQL slot's retained WAL), and seconds behind."""

    behind_bytes: int | None = None
    retained_bytes: int | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class IngestionResult:
    source: str
    success: bool
    rows_loaded: int = 0
    bytes_written: int = 0
    duration_seconds: float = 0.0
    errors: tuple[str, ...] = ()
    error_category: str | None = None
    tables: tuple[TableResult, ...] = field(default_factory=tuple)
    status: str = ""  # success | failed | timeout
    warnings: tuple[str, ...] = ()  # loaded, but the user should know (skipped rows, no file)
    retries: int = 0  # attempts retried after a transient error
    lag: CdcLag | None = None  # CDC: how far behind the source the run left it

    def __post_init__(self) -> None:
        if not self.status:
            object.__setattr__(self, "status", "success" if self.success else "failed")
