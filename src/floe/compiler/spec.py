"""The shape of floe.yaml and platform.yaml, as pydantic models.

These models are the single source of truth for ``schemas/floe.schema.json`` and
``schemas/platform.schema.json`` (see ``floe.compiler.schema_gen``); the compiler validates user
files against those schemas first, for precise messages, and then parses them into these models.
The field names are fixed by ``spec/floe-yaml.md``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from floe.artifacts import (
    BadRows,
    MergeStrategy,
    NotificationEvent,
    SchemaContract,
    Severity,
    SourceType,
    WriteMode,
)

PRODUCT_NAME = r"^[a-z][a-z0-9_-]{0,62}$"
SOURCE_NAME = r"^[a-z][a-z0-9_]{0,62}$"
IDENTIFIER = r"[a-z_][a-z0-9_]{0,127}"
DESTINATION_TABLE = rf"^{IDENTIFIER}(\.{IDENTIFIER})?$"
SEMVER = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"
DURATION = r"^\d+(\.\d+)?\s*(s|m|h|d|w)$"
ENV_NAME = r"^[a-z][a-z0-9_-]{0,62}$"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Metadata(_Spec):
    name: str = Field(pattern=PRODUCT_NAME, description="Data product name; prefixes pipelines.")
    version: str = Field(pattern=SEMVER, description="Semantic version, e.g. 1.0.0.")
    owner: str | None = Field(default=None, description="Who to ask; becomes the assets' owner.")
    description: str | None = None


class RetrySpec(_Spec):
    max_retries: int | None = Field(default=None, ge=0, le=50)
    initial_delay_seconds: float | None = Field(default=None, gt=0, le=3600)
    max_delay_seconds: float | None = Field(default=None, gt=0, le=86400)


class HistorySpec(_Spec):
    """``merge_strategy: scd2``: every version of every row, valid from / to."""

    valid_from_column: str | None = Field(
        default=None, description="take validity from this source column (a timestamp or "
        "date; late data lands in place); default: the load's time, or for CDC the source "
        "commit time")
    track_columns: list[str] = Field(
        default_factory=list, description="the columns whose change makes a new version "
        "(default: all but floe's own)")
    retire_absent: bool = Field(
        default=False, description="true for full extracts: keys missing from a load are "
        "closed; false (default) for incremental loads")


class Defaults(_Spec):
    """Applied to every source that does not set the same key itself."""

    write_mode: WriteMode | None = None
    merge_strategy: MergeStrategy | None = None
    schema_contract: SchemaContract | None = None
    retry: RetrySpec | None = None
    schedule: str | None = None
    timezone: str | None = None
    timeout_seconds: int | None = Field(default=None, gt=0)
    freshness_sla: str | None = Field(
        default=None, pattern=DURATION, description="how old a source's newest load may be "
        "before `floe status` calls it stale, e.g. 2h")


class RowCountSpec(_Spec):
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    severity: Severity = "error"


class ColumnsSpec(_Spec):
    columns: list[str] = Field(min_length=1)
    severity: Severity = "error"


class AcceptedValuesSpec(_Spec):
    column: str
    values: list[str | int | float | bool] = Field(min_length=1)
    severity: Severity = "error"


class FreshnessSpec(_Spec):
    column: str
    max_age: str = Field(pattern=DURATION, description="e.g. 30m, 2h, 1d")
    severity: Severity = "error"


class ReconcileSpec(_Spec):
    max_lag: str | None = Field(default=None, pattern=DURATION,
                                description="newest cursor_field at the source minus in Bronze")
    severity: Severity = "error"


class NullRateSpec(_Spec):
    column: str
    max: float = Field(ge=0, le=1, description="largest fraction of nulls allowed, e.g. 0.05")
    severity: Severity = "error"


class SchemaCheckSpec(_Spec):
    columns: dict[str, str] = Field(
        min_length=1, description="column -> Iceberg type expected in Bronze (long, string, "
        "double, decimal(10, 2), timestamptz...)")
    severity: Severity = "error"


class VolumeSpec(_Spec):
    min_ratio: float | None = Field(default=None, ge=0)
    max_ratio: float | None = Field(default=None, ge=0)
    severity: Severity = "error"


class CheckSpec(_Spec):
    """Exactly one key: the check's type."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    row_count: RowCountSpec | None = None
    not_null: list[str] | ColumnsSpec | None = None
    unique: list[str] | ColumnsSpec | None = None
    accepted_values: AcceptedValuesSpec | None = None
    freshness: FreshnessSpec | None = None
    reconcile: ReconcileSpec | None = Field(
        default=None, description="floe verify as a check: Bronze equals the source")
    null_rate: NullRateSpec | None = None
    schema_: SchemaCheckSpec | None = Field(default=None, alias="schema")
    volume: VolumeSpec | None = Field(
        default=None, description="rows loaded against the average of recent loads")

    @model_validator(mode="after")
    def _exactly_one(self) -> CheckSpec:
        if len(self.model_fields_set) != 1:
            raise ValueError("a check has exactly one key, e.g. `- not_null: [id]`")
        return self


class ColumnSpec(_Spec):
    """A transform column written as a mapping: exactly one of ``expr`` (with ``replace``),
    ``hash`` (with ``salt``) or ``mask`` (each with an optional source ``column``).  One model,
    not three: its schema validates a mapping in one pass (three alternatives cost a 100-source
    compile 22 ms of schema validation)."""

    expr: str | None = Field(default=None, description="a SQL expression over the source's "
                             "columns")
    replace: bool = Field(default=False, description="expr: overwrite the source column of "
                          "this name (otherwise a name the source has is an error)")
    hash: Literal["sha256"] | None = Field(
        default=None, description="replace the value by its keyed hash (HMAC-SHA256, hex): "
        "joins still work, the value is gone")
    salt: str | None = Field(default=None, description="hash: the HMAC key, through secret() "
                             "(never written literally)")
    mask: str | None = Field(default=None, description="literal text with {first N} / "
                             "{last N} of the value, e.g. '****{last 4}'; null: the value "
                             "becomes null", json_schema_extra={"x-null-allowed": True})
    column: str | None = Field(default=None, description="hash, mask: the source column to "
                               "read (default: the column of this name, replaced)")

    @model_validator(mode="after")
    def _one_kind(self) -> ColumnSpec:
        kinds = [k for k in ("expr", "hash", "mask") if k in self.model_fields_set]
        if len(kinds) != 1:
            raise ValueError("a transform column has exactly one of expr, hash, mask")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("expr", "hash", "mask") if k in self.model_fields_set)


class TransformSpec(_Spec):
    """Rows shaped on their way into Bronze, in the same commit.  Everything reads the
    source's columns by their source names; rename and drop shape what lands."""

    columns: dict[str, str | ColumnSpec] = Field(
        default_factory=dict, description="new or replaced columns: a SQL expression, "
        "{expr, replace}, {hash: sha256, salt}, or {mask}")
    rename: dict[str, str] = Field(default_factory=dict,
                                   description="source column -> Bronze column name")
    drop: list[str] = Field(default_factory=list, description="source columns not landed")
    where: str | None = Field(default=None, description="a SQL condition: rows for which it "
                              "is not true never land (CDC: a row updated out of it is "
                              "deleted from Bronze)")


class SourceSpec(_Spec):
    name: str = Field(pattern=SOURCE_NAME, description="Unique; lowercase, digits, underscores.")
    source_type: SourceType
    destination_table: str = Field(
        pattern=DESTINATION_TABLE,
        description="namespace.table, or a bare namespace for one table per resource",
    )
    description: str | None = None
    write_mode: WriteMode | None = None
    merge_strategy: MergeStrategy | None = None
    primary_key: str | list[str] | None = None
    deletes: Literal["hard", "soft"] | None = Field(
        default=None, description="hard (default): deleted rows leave Bronze; soft: they stay, "
        "marked (_floe_deleted_at for postgres_cdc and mysql_cdc, the delete_column otherwise)")
    delete_column: str | None = Field(
        default=None, description="merge only: a row whose column is true (boolean) or "
        "non-null (timestamp) removes its key from Bronze")
    depends_on: list[str] = Field(
        default_factory=list, description="sources (or source.resource) loaded before this one")
    partition_by: list[str] = Field(
        default_factory=list, description="day(updated_at), bucket(16, id), identity(region), "
        "truncate(4, sku)...: the Iceberg partition spec")
    sort_by: list[str] = Field(default_factory=list,
                               description="columns (optionally 'desc') data files are sorted by")
    cursor_field: str | None = None
    cursor_initial_value: str | int | float | None = None
    schema_contract: SchemaContract | None = None
    retry: RetrySpec | None = None
    schedule: str | None = Field(default=None, description="cron, e.g. '0 * * * *'")
    timezone: str | None = None
    timeout_seconds: int | None = Field(default=None, gt=0)
    freshness_sla: str | None = Field(
        default=None, pattern=DURATION, description="how old the newest load may be before "
        "`floe status` calls the source stale (exit 1) and the shipped alert fires, e.g. 2h")
    bad_rows: BadRows | None = Field(
        default=None, description="filesystem (csv, jsonl): what a malformed row does. fail "
        "(default): the load fails, naming file and line; skip: dropped and counted; "
        "quarantine: kept in <table>__rejected (raw text, file, line, error)")
    history: HistorySpec | None = Field(
        default=None, description="with merge_strategy scd2: how versions are kept")
    transform: TransformSpec | None = Field(
        default=None, description="computed, hashed, masked, renamed and dropped columns, and "
        "a row filter, applied before the commit")
    source_config: dict[str, Any] = Field(description="dlt source configuration")
    checks: list[CheckSpec] = Field(default_factory=list)


class EmailSpec(_Spec):
    to: list[str] = Field(min_length=1)
    from_: str = Field(alias="from")
    smtp: str = Field(description="smtp://[user:password@]host:port (STARTTLS when offered) "
                      "or smtps://...; through secret()")
    subject: str | None = Field(default=None, description="a Jinja template")


class TelegramSpec(_Spec):
    bot_token: str = Field(description="the bot's token, through secret() (it can post as "
                           "the bot)")
    chat_id: str | int = Field(description="the chat, group or channel to post to "
                               "(e.g. -1001234567890 or @channel_name)")


class NotificationSpec(_Spec):
    """Exactly one channel: webhook, slack, teams, email or telegram."""

    on: list[NotificationEvent] = Field(min_length=1)
    webhook: str | None = None
    slack: str | None = Field(default=None, description="a Slack incoming-webhook URL")
    teams: str | None = Field(default=None, description="a Teams incoming-webhook URL")
    email: EmailSpec | None = None
    telegram: TelegramSpec | None = Field(default=None, description="a Telegram bot "
                                          "message (Bot API sendMessage)")
    template: str | None = Field(
        default=None, description="a Jinja template; default: one per event (failure, "
        "success, check_failure)")

    @model_validator(mode="after")
    def _one_channel(self) -> NotificationSpec:
        channels = [c for c in ("webhook", "slack", "teams", "email", "telegram")
                    if getattr(self, c)]
        if len(channels) != 1:
            raise ValueError("a notification has exactly one of webhook, slack, teams, "
                             "email, telegram")
        return self


class FloeSpec(_Spec):
    api_version: Literal["floe.dev/v1"] = Field(alias="apiVersion")
    kind: Literal["DataProduct"]
    metadata: Metadata
    platform: str | None = Field(default=None, description="Path to platform.yaml")
    vars: dict[str, Any] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    sources: list[SourceSpec] = Field(default_factory=list)
    notifications: list[NotificationSpec] = Field(default_factory=list)


class CatalogSpec(_Spec):
    type: Literal["sql", "rest", "glue"]
    name: str = "floe"
    uri: str | None = None
    warehouse: str | None = None
    credential: str | None = None
    token: str | None = None
    scope: str | None = None
    vended_credentials: bool = False
    properties: dict[str, str] = Field(
        default_factory=dict, description="Extra pyiceberg catalog properties, passed as-is"
    )


class StorageSpec(_Spec):
    type: Literal["s3", "local"]
    endpoint: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    path_style: bool = False


class MaintenanceSpec(_Spec):
    """``floe maintain`` on a schedule, for every table of the project (Dagster runs it)."""

    schedule: str = Field(description="cron, e.g. '0 3 * * *' (daily at 03:00)")
    timezone: str = "UTC"
    older_than: str = Field(default="7d", pattern=DURATION,
                            description="snapshots and unreferenced files older than this go")
    retain_last: int = Field(default=10, ge=1, description="snapshots always kept per table")


class MetricsSpec(_Spec):
    """Where an environment's runs send their metrics (OTLP needs no setting here: the
    standard OTEL_EXPORTER_OTLP_* variables turn it on)."""

    pushgateway: str | None = Field(default=None, description="a Prometheus Pushgateway URL, "
                                    "e.g. http://pushgateway:9091: each run pushes its "
                                    "metrics, grouped by product and source")


class EnvironmentSpec(_Spec):
    catalog: CatalogSpec
    storage: StorageSpec | None = None
    maintenance: MaintenanceSpec | None = None
    metrics: MetricsSpec | None = None


class PlatformSpec(_Spec):
    api_version: Literal["floe.dev/v1"] = Field(alias="apiVersion")
    kind: Literal["Platform"]
    environments: dict[str, EnvironmentSpec] = Field(
        min_length=1, json_schema_extra={"propertyNames": {"pattern": ENV_NAME}}
    )
