"""CompiledArtifacts: the one contract between the compiler and the runtime.

``floe compile`` writes it; ``floe run`` and the Dagster code location read only it.  Every model
is frozen with ``extra="forbid"`` so a typo or a field from a newer floe is caught when reading.
Serialisation is deterministic: same inputs, same bytes (no wall-clock time anywhere).
Secrets appear only as ``${secret:NAME}`` tokens (see ``floe.secrets``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from floe.errors import ArtifactError

ARTIFACTS_VERSION = "1.5"
"""Bump the minor for additive changes readers may ignore, the major for breaking ones."""
ARTIFACTS_SCHEMA_URL = "https://floe.dev/schemas/compiled_artifacts/v1.json"
DEFAULT_ARTIFACTS_PATH = Path("target") / "compiled_artifacts.json"

SourceType = Literal["rest_api", "sql_database", "filesystem", "postgres_cdc", "mysql_cdc",
                     "python"]
CDC_SOURCE_TYPES = ("postgres_cdc", "mysql_cdc")
"""Sources that read a database's change stream: always merge, deletes from the stream."""
Deletes = Literal["hard", "soft"]
BadRows = Literal["fail", "skip", "quarantine"]
WriteMode = Literal["append", "replace", "merge"]
MergeStrategy = Literal["upsert", "delete-insert", "scd2"]
SchemaContract = Literal["evolve", "freeze", "discard_value"]
Severity = Literal["warn", "error"]
NotificationEvent = Literal["failure", "success", "check_failure"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ProductInfo(_Frozen):
    name: str
    version: str
    owner: str | None = None
    description: str | None = None


class CatalogConfig(_Frozen):
    """An Iceberg catalog, as ``pyiceberg.catalog.load_catalog(name, **properties)`` wants it."""

    type: Literal["sql", "rest", "glue"]
    name: str = "floe"
    uri: str | None = None
    warehouse: str | None = None
    credential: str | None = None
    token: str | None = None
    scope: str | None = None
    vended_credentials: bool = False
    properties: dict[str, str] = Field(default_factory=dict)


class StorageConfig(_Frozen):
    type: Literal["s3", "local"]
    endpoint: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    path_style: bool = False


class ScheduleConfig(_Frozen):
    cron: str
    timezone: str = "UTC"


class MaintenanceConfig(_Frozen):
    """platform.yaml ``maintenance:``: ``floe maintain`` of every table on a schedule."""

    schedule: ScheduleConfig
    older_than_seconds: int = Field(default=7 * 86400, ge=0)
    retain_last: int = Field(default=10, ge=1)


class MetricsConfig(_Frozen):
    """platform.yaml ``metrics:``: a Pushgateway each run pushes to (1.5)."""

    pushgateway: str | None = None


class EnvironmentConfig(_Frozen):
    name: str
    catalog: CatalogConfig
    storage: StorageConfig | None = None
    maintenance: MaintenanceConfig | None = None
    metrics: MetricsConfig | None = None


class HistoryConfig(_Frozen):
    """``merge_strategy: scd2``: how versions are told apart and when each is valid."""

    valid_from_column: str | None = Field(
        default=None, description="the source column a version is valid from (late data lands "
        "in place); None: the load's time, or for CDC the source commit time")
    track_columns: tuple[str, ...] = Field(
        default=(), description="the columns whose change makes a new version (empty: every "
        "column but floe's own)")
    retire_absent: bool = Field(
        default=False, description="full extracts: a key missing from a load is closed")


class TransformColumn(_Frozen):
    """One column a transform writes: computed from an expression, hashed, or masked."""

    name: str
    kind: Literal["expression", "hash", "mask"]
    expression: str | None = Field(default=None, description="expression: as written; the "
                                   "runtime parses it again (floe.expressions)")
    reads: tuple[str, ...] = Field(default=(), description="the source columns it reads")
    replace: bool = Field(default=False, description="it overwrites the source column of its "
                          "name (hash and mask of their own column always do)")
    salt: str | None = Field(default=None, description="hash: a ${secret:NAME} token")
    mask: str | None = Field(default=None, description="mask: the pattern; None: null")


class TransformConfig(_Frozen):
    """``transform:``: applied to every table of the source, before its commit."""

    columns: tuple[TransformColumn, ...] = ()
    rename: dict[str, str] = Field(default_factory=dict)
    drop: tuple[str, ...] = ()
    where: str | None = None
    where_reads: tuple[str, ...] = ()

    def output_name(self, column: str) -> str:
        """What a source column is called in Bronze."""
        return self.rename.get(column, column)


class RetryConfig(_Frozen):
    max_retries: int = Field(default=3, ge=0)
    initial_delay_seconds: float = Field(default=1.0, gt=0)
    max_delay_seconds: float = Field(default=60.0, gt=0)


class RowCountCheck(_Frozen):
    type: Literal["row_count"] = "row_count"
    severity: Severity = "error"
    min: int | None = None
    max: int | None = None


class NotNullCheck(_Frozen):
    type: Literal["not_null"] = "not_null"
    severity: Severity = "error"
    columns: tuple[str, ...]


class UniqueCheck(_Frozen):
    type: Literal["unique"] = "unique"
    severity: Severity = "error"
    columns: tuple[str, ...]


class AcceptedValuesCheck(_Frozen):
    type: Literal["accepted_values"] = "accepted_values"
    severity: Severity = "error"
    column: str
    values: tuple[str | int | float | bool, ...]


class FreshnessCheck(_Frozen):
    type: Literal["freshness"] = "freshness"
    severity: Severity = "error"
    column: str
    max_age_seconds: int


class NullRateCheck(_Frozen):
    type: Literal["null_rate"] = "null_rate"
    severity: Severity = "error"
    column: str
    max: float


class SchemaCheck(_Frozen):
    type: Literal["schema"] = "schema"
    severity: Severity = "error"
    columns: dict[str, str]


class VolumeCheck(_Frozen):
    type: Literal["volume"] = "volume"
    severity: Severity = "error"
    min_ratio: float | None = None
    max_ratio: float | None = None


class ReconcileCheck(_Frozen):
    type: Literal["reconcile"] = "reconcile"
    severity: Severity = "error"
    max_lag_seconds: int | None = None


CheckConfig = Annotated[
    RowCountCheck | NotNullCheck | UniqueCheck | AcceptedValuesCheck | FreshnessCheck
    | ReconcileCheck | NullRateCheck | SchemaCheck | VolumeCheck,
    Field(discriminator="type"),
]


class CompiledSource(_Frozen):
    """One source, with defaults applied and nothing left for the runtime to decide."""

    name: str
    source_type: SourceType
    description: str | None = None
    pipeline_name: str
    destination_table: str
    namespace: str
    table: str | None = Field(
        default=None, description="None when destination_table is a bare namespace"
    )
    resources: tuple[str, ...] = Field(
        default=(), description="dlt resource names known at compile time (one asset each)"
    )
    schema_asset: str | None = Field(
        default=None, description="sql_database without tables: the one asset for the whole "
        "schema (its tables are reflected at run time, never when loading definitions)")
    write_mode: WriteMode
    merge_strategy: MergeStrategy | None = None
    primary_key: tuple[str, ...] = ()
    deletes: Deletes = Field(
        default="hard", description="hard: a deleted row leaves Bronze; soft: it stays with "
        "_floe_deleted_at (postgres_cdc, mysql_cdc) or its delete_column marker")
    delete_column: str | None = Field(
        default=None, description="merge: a row whose column is true / non-null deletes its key")
    depends_on: tuple[str, ...] = Field(
        default=(), description="sources, or source.resource, loaded before this one")
    partition_by: tuple[str, ...] = ()
    sort_by: tuple[str, ...] = ()
    cursor_field: str | None = None
    cursor_initial_value: str | int | float | None = None
    schema_contract: SchemaContract
    retry: RetryConfig
    schedule: ScheduleConfig | None = None
    timeout_seconds: int | None = None
    freshness_sla_seconds: int | None = Field(
        default=None, description="floe status: stale when the newest load is older (1.5)")
    checks: tuple[CheckConfig, ...] = ()
    declared: tuple[str, ...] = Field(
        default=(), description="python sources: the hints floe.yaml sets itself (write_mode, "
        "primary_key, merge_strategy); the others come from the dlt resource's own hints")
    bad_rows: BadRows = Field(
        default="fail", description="filesystem csv/jsonl: a malformed row fails the load, is "
        "skipped (counted), or is kept in <table>__rejected with its file, line and error")
    history: HistoryConfig | None = Field(
        default=None, description="merge_strategy scd2: every version of every row is kept")
    transform: TransformConfig | None = Field(
        default=None, description="computed, hashed, masked, renamed, dropped columns and a "
        "row filter (1.5)")
    source_config: dict[str, Any]

    def table_for(self, resource: str) -> str:
        """The Iceberg table (without namespace) a dlt resource of this source lands in."""
        return self.table or resource

    def asset_name(self, resource: str) -> str:
        """``ingestion__{source}__{resource}``: the Dagster asset key, also used in alerts."""
        return re.sub(r"[^A-Za-z0-9_]", "_", f"ingestion__{self.name}__{resource}")


NotificationChannel = Literal["webhook", "slack", "teams", "email", "telegram"]


class NotificationConfig(_Frozen):
    on: tuple[NotificationEvent, ...]
    channel: NotificationChannel = "webhook"
    target: str = Field(description="the webhook URL, smtp:// URL or Telegram bot token (a "
                        "secret reference)")
    template: str | None = Field(default=None, description="None: the event's default")
    email_to: tuple[str, ...] = ()
    email_from: str | None = None
    subject: str | None = None
    chat_id: str | None = Field(default=None, description="telegram: the chat to post to")


class CompiledArtifacts(_Frozen):
    schema_url: str = Field(default=ARTIFACTS_SCHEMA_URL, alias="$schema")
    artifacts_version: str = ARTIFACTS_VERSION
    floe_version: str
    inputs_sha256: str
    project_root: str = Field(
        description="the project directory, relative to the directory holding this file"
    )
    inputs: dict[str, str] = Field(
        default_factory=dict, description="the files compiled, relative to the project "
        "folder -> their sha256: `floe run` refuses a floe.yaml edited since (1.3)")
    vars_override: dict[str, Any] = Field(
        default_factory=dict, description="the --vars of the compile, so `floe run --compile` "
        "compiles the same way (1.3)")
    product: ProductInfo
    environment: EnvironmentConfig
    sources: tuple[CompiledSource, ...] = ()
    notifications: tuple[NotificationConfig, ...] = ()

    def source(self, name: str) -> CompiledSource:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)

    def to_json(self) -> str:
        """Deterministic JSON: fixed field order, two-space indent, trailing newline."""
        data = self.model_dump(mode="json", by_alias=True)
        return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_artifacts(artifacts: CompiledArtifacts, path: Path) -> None:
    """Write atomically, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(artifacts.to_json(), encoding="utf-8")
    tmp.replace(path)


_last_read: list[tuple[str, CompiledArtifacts]] = []  # the last artifact validated, by its text


def load_artifacts(path: Path = DEFAULT_ARTIFACTS_PATH) -> CompiledArtifacts:
    """Read an artifact, refusing versions this floe does not understand.

    The CLI reads it before importing the runtime (to answer a mistake at once), then the
    runtime reads it again: the same text is validated once (models are frozen, so sharing
    one is safe)."""
    try:
        text = path.read_text(encoding="utf-8")
        if _last_read and _last_read[0][0] == text:
            return _last_read[0][1]
        data = json.loads(text)
    except FileNotFoundError:
        raise ArtifactError(f"{path} not found: run `floe compile` first") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path} is not a readable artifact ({exc}); run `floe compile` "
                            "again") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{path} is not a floe artifact; run `floe compile` again")
    version = str(data.get("artifacts_version", "unknown"))
    if version.split(".")[0] != ARTIFACTS_VERSION.split(".")[0]:
        raise ArtifactError(
            f"{path} has artifacts_version {version}, but this floe reads "
            f"{ARTIFACTS_VERSION.split('.')[0]}.x (written by floe "
            f"{data.get('floe_version', 'unknown')}); recompile with `floe compile` or install a "
            "floe that reads that version")
    try:
        artifacts = CompiledArtifacts.model_validate(data)
    except ValidationError as exc:
        raise ArtifactError(f"{path} does not match artifacts_version {version}: "
                            f"{exc.error_count()} problem(s), first: {exc.errors()[0]['msg']} at "
                            f"{'.'.join(str(p) for p in exc.errors()[0]['loc'])}; run "
                            "`floe compile` again") from None
    _last_read[:] = [(text, artifacts)]
    return artifacts
