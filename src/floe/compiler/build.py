"""Stage 5, build: validated specs -> ``CompiledArtifacts`` with every default resolved."""

from __future__ import annotations

import re
import zlib
from typing import Any

from floe import __version__
from floe.artifacts import (
    CDC_SOURCE_TYPES,
    AcceptedValuesCheck,
    CatalogConfig,
    CheckConfig,
    CompiledArtifacts,
    CompiledSource,
    EnvironmentConfig,
    FreshnessCheck,
    HistoryConfig,
    MaintenanceConfig,
    MetricsConfig,
    NotificationConfig,
    NotNullCheck,
    NullRateCheck,
    ProductInfo,
    ReconcileCheck,
    RetryConfig,
    RowCountCheck,
    ScheduleConfig,
    SchemaCheck,
    StorageConfig,
    TransformColumn,
    TransformConfig,
    UniqueCheck,
    VolumeCheck,
)
from floe.compiler.checks import resource_names
from floe.compiler.spec import (
    CheckSpec,
    ColumnsSpec,
    Defaults,
    EnvironmentSpec,
    FloeSpec,
    NotificationSpec,
    RetrySpec,
    SourceSpec,
    TransformSpec,
)
from floe.expressions import parse
from floe.layout import rejoin

EMBEDDED_ENVIRONMENT = EnvironmentSpec.model_validate({
    "catalog": {"type": "sql", "name": "floe", "uri": "sqlite:///.floe/catalog.db",
                "warehouse": ".floe/warehouse"},
})
"""What you get without platform.yaml: a SQLite catalog and a local warehouse, in the project."""

_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_seconds(text: str) -> int:
    """``"2h"`` -> 7200 (the pattern was already checked by the schema)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", text.strip())
    if match is None:
        raise ValueError(f"not a duration: {text!r}")
    return round(float(match.group(1)) * _SECONDS[match.group(2)])


def _retry(source: RetrySpec | None, defaults: RetrySpec | None) -> RetryConfig:
    chosen: dict[str, Any] = {}
    for layer in (defaults, source):
        if layer is not None:
            chosen.update(layer.model_dump(exclude_none=True))
    return RetryConfig(**chosen)


def _columns(spec: list[str] | ColumnsSpec) -> tuple[tuple[str, ...], str]:
    if isinstance(spec, ColumnsSpec):
        return tuple(spec.columns), spec.severity
    return tuple(spec), "error"


def _check(spec: CheckSpec) -> CheckConfig:
    if spec.row_count is not None:
        return RowCountCheck(min=spec.row_count.min, max=spec.row_count.max,
                             severity=spec.row_count.severity)
    if spec.not_null is not None:
        columns, severity = _columns(spec.not_null)
        return NotNullCheck(columns=columns, severity=severity)
    if spec.unique is not None:
        columns, severity = _columns(spec.unique)
        return UniqueCheck(columns=columns, severity=severity)
    if spec.accepted_values is not None:
        av = spec.accepted_values
        return AcceptedValuesCheck(column=av.column, values=tuple(av.values), severity=av.severity)
    if spec.null_rate is not None:
        return NullRateCheck(column=spec.null_rate.column, max=spec.null_rate.max,
                             severity=spec.null_rate.severity)
    if spec.schema_ is not None:
        return SchemaCheck(columns=dict(spec.schema_.columns), severity=spec.schema_.severity)
    if spec.volume is not None:
        return VolumeCheck(min_ratio=spec.volume.min_ratio, max_ratio=spec.volume.max_ratio,
                           severity=spec.volume.severity)
    if spec.reconcile is not None:
        lag = spec.reconcile.max_lag
        return ReconcileCheck(severity=spec.reconcile.severity,
                              max_lag_seconds=duration_seconds(lag) if lag else None)
    assert spec.freshness is not None  # CheckSpec guarantees exactly one key
    return FreshnessCheck(column=spec.freshness.column, severity=spec.freshness.severity,
                          max_age_seconds=duration_seconds(spec.freshness.max_age))


def _notification(spec: NotificationSpec) -> NotificationConfig:
    if spec.email is not None:
        return NotificationConfig(
            on=tuple(spec.on), channel="email", target=spec.email.smtp, template=spec.template,
            email_to=tuple(spec.email.to), email_from=spec.email.from_,
            subject=spec.email.subject)
    if spec.telegram is not None:
        return NotificationConfig(on=tuple(spec.on), channel="telegram",
                                  target=spec.telegram.bot_token, template=spec.template,
                                  chat_id=str(spec.telegram.chat_id))
    channel = "slack" if spec.slack else "teams" if spec.teams else "webhook"
    target = spec.slack or spec.teams or spec.webhook
    assert target is not None  # NotificationSpec guarantees one channel
    return NotificationConfig(on=tuple(spec.on), channel=channel, target=target,
                              template=spec.template)


def pipeline_name(product: str, source: str) -> str:
    """One dlt pipeline per source, so state never collides across sources or products."""
    return f"{product.replace('-', '_')}__{source}"


def default_server_id(product: str, source: str) -> int:
    """mysql_cdc's replica id when floe.yaml sets none: one per product and source, from
    1,000,000 up (servers' own ids are usually small): 1000000 + crc32("product__source")
    mod 3,000,000,000 (docs/mysql.md)."""
    return 1_000_000 + zlib.crc32(pipeline_name(product, source).encode()) % 3_000_000_000


def replication_names(product: str, source: str, config: dict[str, Any]) -> dict[str, Any]:
    """postgres_cdc: the slot and publication, defaulted (slot names allow [a-z0-9_] only)."""
    slot = str(config.get("slot_name") or re.sub(r"[^a-z0-9_]", "_", f"floe_{product}_{source}"))
    return {**config, "schema": config.get("schema") or "public", "slot_name": slot,
            "publication_name": config.get("publication_name") or slot}


def _cdc_config(spec: SourceSpec, product: str) -> dict[str, Any]:
    """A CDC source's config with what identifies it at the database defaulted."""
    if spec.source_type == "mysql_cdc":
        return {**spec.source_config, "server_id": spec.source_config.get("server_id")
                or default_server_id(product, spec.name)}
    return replication_names(product, spec.name, spec.source_config)


def _history(spec: SourceSpec, write_mode: str, defaults: Defaults) -> HistoryConfig | None:
    """scd2 sources keep history; ``history:`` only tunes it (checks reject it elsewhere)."""
    strategy = spec.merge_strategy or defaults.merge_strategy
    if write_mode != "merge" or strategy != "scd2":
        return None
    found = spec.history
    if found is None:
        return HistoryConfig()
    return HistoryConfig(valid_from_column=found.valid_from_column,
                         track_columns=tuple(found.track_columns),
                         retire_absent=found.retire_absent)


def _transform(spec: TransformSpec | None) -> TransformConfig | None:
    """The transform with each expression's columns (checks parsed them already)."""
    if spec is None:
        return None
    columns: list[TransformColumn] = []
    for name, column in spec.columns.items():
        if isinstance(column, str) or column.kind == "expr":
            text = column if isinstance(column, str) else str(column.expr)
            columns.append(TransformColumn(
                name=name, kind="expression", expression=text, reads=parse(text).columns,
                replace=not isinstance(column, str) and column.replace))
        else:
            columns.append(TransformColumn(
                name=name, kind="hash" if column.kind == "hash" else "mask",
                salt=column.salt, mask=column.mask, reads=(column.column or name,),
                replace=column.column in (None, name)))
    return TransformConfig(columns=tuple(columns), rename=dict(spec.rename),
                           drop=tuple(spec.drop), where=spec.where,
                           where_reads=parse(spec.where).columns if spec.where else ())


def _declared(spec: SourceSpec, defaults: Defaults) -> tuple[str, ...]:
    """The load hints floe.yaml sets for a python source (its defaults: included); the
    others are the resource's own."""
    return tuple(key for key in ("write_mode", "primary_key", "merge_strategy")
                 if getattr(spec, key) is not None or getattr(defaults, key, None) is not None)


def _source(spec: SourceSpec, defaults: Defaults, product: str) -> CompiledSource:
    cdc = spec.source_type in CDC_SOURCE_TYPES
    write_mode = "merge" if cdc else spec.write_mode or defaults.write_mode or "append"
    namespace, _, table = spec.destination_table.partition(".")
    names = resource_names(spec.source_type, spec.source_config)
    if spec.source_type == "filesystem":
        names = [table or spec.name]
    cron = spec.schedule or defaults.schedule
    primary_key = spec.primary_key
    return CompiledSource(
        name=spec.name,
        source_type=spec.source_type,
        description=spec.description,
        pipeline_name=pipeline_name(product, spec.name),
        destination_table=spec.destination_table,
        namespace=namespace,
        table=table or None,
        resources=tuple(names),
        schema_asset=str(spec.source_config.get("schema") or "all_tables")
        if spec.source_type == "sql_database" and not names else None,
        write_mode=write_mode,
        merge_strategy=(spec.merge_strategy or defaults.merge_strategy or "upsert")
        if write_mode == "merge" else None,
        primary_key=(primary_key,) if isinstance(primary_key, str) else tuple(primary_key or ()),
        deletes=spec.deletes or "hard",
        depends_on=tuple(spec.depends_on),
        partition_by=tuple(text for _, text in rejoin(spec.partition_by)),
        sort_by=tuple(spec.sort_by),
        delete_column=spec.delete_column,
        cursor_field=spec.cursor_field,
        cursor_initial_value=spec.cursor_initial_value,
        schema_contract=spec.schema_contract or defaults.schema_contract or "evolve",
        retry=_retry(spec.retry, defaults.retry),
        schedule=ScheduleConfig(cron=cron, timezone=spec.timezone or defaults.timezone or "UTC")
        if cron else None,
        timeout_seconds=spec.timeout_seconds or defaults.timeout_seconds,
        freshness_sla_seconds=duration_seconds(sla) if (
            sla := spec.freshness_sla or defaults.freshness_sla) else None,
        checks=tuple(_check(c) for c in spec.checks),
        bad_rows=spec.bad_rows or "fail",
        history=_history(spec, write_mode, defaults),
        transform=_transform(spec.transform),
        declared=_declared(spec, defaults) if spec.source_type == "python" else (),
        source_config=_cdc_config(spec, product) if cdc else spec.source_config,
    )


def build_artifacts(
    floe: FloeSpec, environment_name: str, environment: EnvironmentSpec,
    inputs_sha256: str, project_root: str,
) -> CompiledArtifacts:
    product = floe.metadata.name
    return CompiledArtifacts(
        floe_version=__version__,
        inputs_sha256=inputs_sha256,
        project_root=project_root,
        product=ProductInfo(name=product, version=floe.metadata.version,
                            owner=floe.metadata.owner, description=floe.metadata.description),
        environment=EnvironmentConfig(
            name=environment_name,
            catalog=CatalogConfig(**environment.catalog.model_dump()),
            storage=StorageConfig(**environment.storage.model_dump())
            if environment.storage else None,
            maintenance=MaintenanceConfig(
                schedule=ScheduleConfig(cron=environment.maintenance.schedule,
                                        timezone=environment.maintenance.timezone),
                older_than_seconds=duration_seconds(environment.maintenance.older_than),
                retain_last=environment.maintenance.retain_last)
            if environment.maintenance else None,
            metrics=MetricsConfig(pushgateway=environment.metrics.pushgateway)
            if environment.metrics else None,
        ),
        sources=tuple(_source(s, floe.defaults, product) for s in floe.sources),
        notifications=tuple(_notification(n) for n in floe.notifications),
    )
