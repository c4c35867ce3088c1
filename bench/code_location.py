"""How long the Dagster code location takes to load: floe vs the same assets written by hand.

For 10, 100 and 500 sources (rest_api, sql_database and filesystem in turn, with schedules and
checks), time ``floe.runtime.dagster.build_definitions`` on the compiled artifact, and a
hand-written module that builds the same dlt sources and ``@dlt_assets`` directly.  Both
finish with ``Definitions.validate_loadable`` (what ``dagster definitions validate`` does), in
this process, best of three.  Target (issue #4): floe <= 1.2x hand-written; 500 sources < 10 s.

    .venv/bin/python bench/code_location.py [--sizes 10,100,500]

(No ``from __future__ import annotations``: Dagster reads the ``context`` annotation.)
"""

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import dagster as dg
import dlt
from dagster import AssetExecutionContext
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData
from dlt.sources.filesystem import filesystem, read_jsonl
from dlt.sources.rest_api import rest_api_source
from dlt.sources.sql_database import sql_database

from compile import project_text  # bench/compile.py: the same generated projects
from floe.artifacts import CompiledSource, write_artifacts
from floe.compiler import CompileRequest, compile_project
from floe.logs import configure_logging
from floe.runtime.dagster import build_definitions


def hand_written_source(source: CompiledSource, landing: Path) -> Any:
    """What a user would write without floe, with literal configuration."""
    config = source.source_config
    if source.source_type == "rest_api":
        return rest_api_source({
            "client": {"base_url": "http://localhost:8000",
                       "auth": {"type": "bearer", "token": "not-a-real-token"}},
            "resources": config["resources"]})
    if source.source_type == "sql_database":
        return sql_database(credentials="postgresql+psycopg2://floe:pw@localhost:5432/shop",
                            table_names=list(config["tables"]), backend="pyarrow",
                            defer_table_reflect=True)
    files = filesystem(bucket_url=landing.as_uri(), file_glob="*.jsonl") | read_jsonl()

    @dlt.source(name=source.name)
    def landing_source() -> Any:
        return files.with_name(source.resources[0])

    return landing_source()


@dataclass
class Keys(DagsterDltTranslator):
    """The least a hand-written location needs: unique keys (every rest_api source is
    called ``rest_api`` by dlt) and no placeholder upstream assets."""

    source_name: str = ""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        key = dg.AssetKey(f"ingestion__{self.source_name}__{data.resource.name}")
        return super().get_asset_spec(data).replace_attributes(key=key, deps=[])


def hand_written(sources: tuple[CompiledSource, ...], landing: Path, pipelines: Path
                 ) -> dg.Definitions:
    assets = []
    jobs = []
    schedules = []
    for source in sources:
        pipeline = dlt.pipeline(pipeline_name=source.pipeline_name, destination="filesystem",
                                dataset_name=source.namespace, pipelines_dir=str(pipelines))

        @dlt_assets(dlt_source=hand_written_source(source, landing), dlt_pipeline=pipeline,
                    name=f"ingestion__{source.name}", group_name="bench",
                    dagster_dlt_translator=Keys(source_name=source.name))
        def _assets(context: AssetExecutionContext, dlt: DagsterDltResource
                    ) -> Iterator[Any]:
            yield from dlt.run(context=context)

        assets.append(_assets)
        job = dg.define_asset_job(f"ingest__{source.name}",
                                  selection=dg.AssetSelection.assets(*_assets.keys),
                                  op_retry_policy=dg.RetryPolicy(max_retries=3))
        jobs.append(job)
        if source.schedule:
            schedules.append(dg.ScheduleDefinition(job=job,
                                                   cron_schedule=source.schedule.cron))
    return dg.Definitions(assets=assets, jobs=jobs, schedules=schedules,
                          resources={"dlt": DagsterDltResource()})


def best_of(repeats: int, build: Callable[[], dg.Definitions]) -> tuple[float, int]:
    best, assets = float("inf"), 0
    for _ in range(repeats):
        started = time.perf_counter()
        defs = build()
        dg.Definitions.validate_loadable(defs)
        best = min(best, time.perf_counter() - started)
        assets = len(defs.resolve_asset_graph().get_all_asset_keys())
    return best, assets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,500")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    configure_logging("error")
    print(f"{'sources':>8} {'assets':>7} {'hand-written s':>15} {'floe s':>8} {'ratio':>6}")
    verdicts = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            folder = Path(tmp) / f"p{size}"
            (folder / "landing").mkdir(parents=True)
            (folder / "floe.yaml").write_text(project_text(size))
            artifacts = compile_project(CompileRequest(
                floe_file=folder / "floe.yaml", output_dir=folder / "target", environ={}))
            path = folder / "target" / "compiled_artifacts.json"
            write_artifacts(artifacts, path)
            by_hand, hand_assets = best_of(args.repeats, partial(
                hand_written, artifacts.sources, folder / "landing", folder / "pipelines"))
            floe_s, floe_assets = best_of(args.repeats, partial(build_definitions, path))
            assert hand_assets == floe_assets, (hand_assets, floe_assets)
            ratio = floe_s / by_hand
            print(f"{size:>8} {floe_assets:>7} {by_hand:>15.3f} {floe_s:>8.3f} {ratio:>6.2f}")
            verdicts.append(f"{size} sources: {ratio:.2f}x (target <= 1.2x)")
            if size == 500:
                verdicts.append(f"500 sources load in {floe_s:.2f} s (target < 10 s)")
    print("\n".join(verdicts))


if __name__ == "__main__":
    main()
