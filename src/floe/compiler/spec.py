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
    # a docstring under a field is its description: in the schema, editors, the reference
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              use_attribute_docstrings=True)


class Metadata(_Spec):
    """The product: its name prefixes every pipeline, its owner owns every asset."""

    name: str = Field(pattern=PRODUCT_NAME, description="Data product name; prefixes pipelines.")
    version: str = Field(pattern=SEMVER, description="Semantic version, e.g. 1.0.0.")
    owner: str | None = Field(default=None, description="Who to ask; becomes the assets' owner.")
    description: str | None = None
    """What the product is, shown in Dagster and the artifact."""


class RetrySpec(_Spec):
    """Retries of a load that failed on a transient error, with exponential backoff."""

    max_retries: int | None = Field(default=None, ge=0, le=50)
    """Attempts after the first when a load fails on a transient error (HTTP 429/5xx, timeouts,
    dropped connections); default 3."""
    initial_delay_seconds: float | None = Field(default=None, gt=0, le=3600)
    """Wait before the first retry, doubled each time; default 1."""
    max_delay_seconds: float | None = Field(default=None, gt=0, le=86400)
    """Longest wait between two retries; default 60."""


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
    """append (default), replace or merge, for sources that do not say."""
    merge_strategy: MergeStrategy | None = None
    """upsert (default), delete-insert or scd2, for merge sources that do not say."""
    schema_contract: SchemaContract | None = None
    """evolve (default), freeze or discard_value, for sources that do not say."""
    retry: RetrySpec | None = None
    """Retries on transient errors, for sources that do not say."""
    schedule: str | None = None
    """A cron expression every source runs on unless it sets its own, e.g. '0 * * * *'."""
    timezone: str | None = None
    """The IANA time zone schedules are read in (default UTC), e.g. Europe/Paris."""
    timeout_seconds: int | None = Field(default=None, gt=0)
    """A load running longer is stopped (nothing committed) and reported as timed out."""
    freshness_sla: str | None = Field(
        default=None, pattern=DURATION, description="how old a source's newest load may be "
        "before `floe status` calls it stale, e.g. 2h")


class RowCountSpec(_Spec):
    """The table holds between min and max rows."""

    min: int | None = Field(default=None, ge=0)
    """Fewest rows the table may hold."""
    max: int | None = Field(default=None, ge=0)
    """Most rows the table may hold."""
    severity: Severity = "error"
    """error (default): the check fails the run; warn: it is reported only."""


class ColumnsSpec(_Spec):
    columns: list[str] = Field(min_length=1)
    """The columns checked."""
    severity: Severity = "error"
    """error (default): the check fails the run; warn: it is reported only."""


class AcceptedValuesSpec(_Spec):
    column: str
    """The column checked."""
    values: list[str | int | float | bool] = Field(min_length=1)
    """Every value the column may hold (nulls are allowed)."""
    severity: Severity = "error"
    """error (default): the check fails the run; warn: it is reported only."""


class FreshnessSpec(_Spec):
    column: str
    """A timestamp column whose newest value is checked."""
    max_age: str = Field(pattern=DURATION, description="e.g. 30m, 2h, 1d")
    severity: Severity = "error"
    """error (default): the check fails the run; warn: it is reported only."""


class ReconcileSpec(_Spec):
    max_lag: str | None = Field(default=None, pattern=DURATION,
                                description="newest cursor_field at the source minus in Bronze")
    severity: Severity = "error"
    """error (default): the check fails the run; warn: it is reported only."""


class NullRateSpec(_Spec):
    column: str
    """The column checked."""
    max: float = Field(ge=0, le=1, description="largest fraction of nulls allowed, e.g. 0.05")
    severity: Severity = "error"
    """error (default): the check fails the run; warn: it is reported only."""


class SchemaCheckSpec(_Spec):
    columns: dict[str, str] = Field(
        min_length=1, description="column -> Iceberg type expected in Bronze (long, string, "
        "double, decimal(10, 2), timestamptz...)")
    severity: Severity = "error"
    """error (default): the check fails the run; warn: it is reported only."""


class VolumeSpec(_Spec):
    min_ratio: float | None = Field(default=None, ge=0)
    """Fewest rows a load may land, as a fraction of the average of recent loads, e.g. 0.5."""
    max_ratio: float | None = Field(default=None, ge=0)
    """Most rows a load may land, as a multiple of the average of recent loads, e.g. 3."""
    severity: Severity = "error"
    """error (default): the check fails the run; warn: it is reported only."""


class CheckSpec(_Spec):
    """Exactly one key: the check's type."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    row_count: RowCountSpec | None = None
    """The table holds between min and max rows."""
    not_null: list[str] | ColumnsSpec | None = None
    """The columns hold no null: a list of columns, or {columns, severity}."""
    unique: list[str] | ColumnsSpec | None = None
    """No two rows share these columns' values: a list of columns, or {columns, severity}."""
    accepted_values: AcceptedValuesSpec | None = None
    """A column holds only the listed values."""
    freshness: FreshnessSpec | None = None
    """A timestamp column's newest value is at most max_age old."""
    reconcile: ReconcileSpec | None = Field(
        default=None, description="floe verify as a check: Bronze equals the source")
    null_rate: NullRateSpec | None = None
    """At most a fraction of a column's values are null."""
    schema_: SchemaCheckSpec | None = Field(default=None, alias="schema")
    """Bronze's columns have these Iceberg types."""
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
    """What floe reads: rest_api, sql_database, filesystem, python, postgres_cdc or mysql_cdc."""
    destination_table: str = Field(
        pattern=DESTINATION_TABLE,
        description="namespace.table, or a bare namespace for one table per resource",
    )
    description: str | None = None
    """What the source is, shown on its Dagster assets."""
    write_mode: WriteMode | None = None
    """append (default): each row once; replace: the table becomes the load; merge: rows replace
    those with the same primary_key (CDC sources always merge)."""
    merge_strategy: MergeStrategy | None = None
    """merge only: upsert (default, one row per key), delete-insert (the load's rows as sent) or
    scd2 (every version kept)."""
    primary_key: str | list[str] | None = None
    """The column(s) a merge matches rows on; CDC sources default to the table's own key."""
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
    """Incremental loading: only rows whose value is newer than the last load's newest are read."""
    cursor_initial_value: str | int | float | None = None
    """With cursor_field: where the first load starts."""
    schema_contract: SchemaContract | None = None
    """When the source's columns change: evolve (default) adds them; freeze rejects the load, table
    untouched; discard_value drops new columns."""
    retry: RetrySpec | None = None
    """Retries on transient errors (defaults: 3 retries from 1 s, at most 60 s apart)."""
    schedule: str | None = Field(default=None, description="cron, e.g. '0 * * * *'")
    timezone: str | None = None
    """The IANA time zone the schedule is read in (default UTC)."""
    timeout_seconds: int | None = Field(default=None, gt=0)
    """A load running longer is stopped (nothing committed) and reported as timed out."""
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
    """Data quality checks run after each load (as Dagster asset checks under Dagster)."""


class EmailSpec(_Spec):
    to: list[str] = Field(min_length=1)
    """Recipients."""
    from_: str = Field(alias="from")
    """The sender address."""
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
    """The events that send it: failure, success, check_failure."""
    webhook: str | None = None
    """A URL that receives a JSON POST (a secret reference)."""
    slack: str | None = Field(default=None, description="a Slack incoming-webhook URL")
    teams: str | None = Field(default=None, description="a Teams incoming-webhook URL")
    email: EmailSpec | None = None
    """An email through SMTP."""
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
    """Always floe.dev/v1."""
    kind: Literal["DataProduct"]
    """Always DataProduct."""
    metadata: Metadata
    """The product's name, version and owner."""
    platform: str | None = Field(default=None, description="Path to platform.yaml")
    vars: dict[str, Any] = Field(default_factory=dict)
    """Values templates read with var('name'); `--vars` overrides them."""
    defaults: Defaults = Field(default_factory=Defaults)
    sources: list[SourceSpec] = Field(default_factory=list)
    """What to load, one entry per source."""
    notifications: list[NotificationSpec] = Field(default_factory=list)
    """Where failures, successes and check failures are sent."""


class CatalogSpec(_Spec):
    type: Literal["sql", "rest", "glue"]
    """sql (SQLite or PostgreSQL through SQLAlchemy), rest (an Iceberg REST catalog) or glue (AWS
    Glue)."""
    name: str = "floe"
    """The catalog's name in pyiceberg (default floe)."""
    uri: str | None = None
    """sql: a SQLAlchemy URL (sqlite:///.floe/catalog.db); rest: the catalog's URL."""
    warehouse: str | None = None
    """Where table data goes: a local folder, s3://bucket/path, or the REST warehouse name."""
    credential: str | None = None
    """rest: an OAuth2 client_id:secret (a secret reference)."""
    token: str | None = None
    """rest: a bearer token (a secret reference)."""
    scope: str | None = None
    """rest: the OAuth2 scope."""
    vended_credentials: bool = False
    """rest: ask the catalog for temporary storage credentials."""
    properties: dict[str, str] = Field(
        default_factory=dict, description="Extra pyiceberg catalog properties, passed as-is"
    )


class StorageSpec(_Spec):
    type: Literal["s3", "local"]
    """s3 or local."""
    endpoint: str | None = None
    """s3: a custom endpoint (MinIO, SeaweedFS...)."""
    region: str | None = None
    """s3: the region."""
    access_key_id: str | None = None
    """s3: the access key (a secret reference)."""
    secret_access_key: str | None = None
    """s3: the secret key (a secret reference)."""
    path_style: bool = False
    """s3: path-style addressing (most S3-compatible servers need it)."""


class MaintenanceSpec(_Spec):
    """``floe maintain`` on a schedule, for every table of the project (Dagster runs it)."""

    schedule: str = Field(description="cron, e.g. '0 3 * * *' (daily at 03:00)")
    timezone: str = "UTC"
    """The IANA time zone the schedule is read in (default UTC)."""
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
    """The environment's Iceberg catalog."""
    storage: StorageSpec | None = None
    """Object storage credentials for the catalog's data files."""
    maintenance: MaintenanceSpec | None = None
    metrics: MetricsSpec | None = None


class PlatformSpec(_Spec):
    api_version: Literal["floe.dev/v1"] = Field(alias="apiVersion")
    """Always floe.dev/v1."""
    kind: Literal["Platform"]
    """Always Platform."""
    environments: dict[str, EnvironmentSpec] = Field(
        min_length=1, json_schema_extra={"propertyNames": {"pattern": ENV_NAME}}
    )
    """One entry per environment (dev, prod...): `floe compile --env NAME` picks one."""
