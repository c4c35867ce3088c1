"""The shop's data as a dlt source: what a data engineer writes in a few lines, loaded by floe
with exactly-once Iceberg commits.  Three kinds of resource:

- ``customers``: an HTTP API read incrementally; dlt's cursor (``updated_at``) is kept in the
  Iceberg table with the rows, so the next run asks only for what changed;
- ``events``: a queue consumer; its offset lives in ``dlt.current.resource_state()``, committed
  in the same snapshot as the events it read, so a run killed at any point reads each event once;
- ``orders`` (merged on ``id``) and ``order_lines``: a parent and a transformer child, one
  table each.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import requests


@dlt.resource(primary_key="id", write_disposition={"disposition": "merge", "strategy": "upsert"})
def customers(base_url: str, api_key: str,
              updated: Any = dlt.sources.incremental("updated_at", initial_value="")
              ) -> Iterator[list[dict[str, Any]]]:
    since, page = updated.last_value, 1
    while True:
        answer = requests.get(f"{base_url}/customers", params={"since": since, "page": page},
                              headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
        answer.raise_for_status()  # a 401 fails at once, a 503 is retried by floe
        if not answer.json():
            return
        yield answer.json()
        page += 1


@dlt.resource
def events(queue: str, batch: int = 50) -> Iterator[list[dict[str, Any]]]:
    """Reads the queue from the offset committed with the last load, a batch at a time."""
    lines = Path(queue).read_text().splitlines()
    state = dlt.current.resource_state()
    offset = state.get("offset", 0)
    while offset < len(lines):
        rows = [json.loads(line) for line in lines[offset:offset + batch]]
        time.sleep(0.2)  # a slow consumer: there is time to kill the run mid-way
        yield rows
        offset += len(rows)
        state["offset"] = offset


@dlt.resource(primary_key="id", write_disposition="merge")
def orders(base_url: str, api_key: str) -> Iterator[list[dict[str, Any]]]:
    answer = requests.get(f"{base_url}/orders", headers={"Authorization": f"Bearer {api_key}"},
                          timeout=10)
    answer.raise_for_status()
    yield answer.json()


@dlt.transformer(primary_key=["order_id", "sku"], write_disposition="merge")
def order_lines(batch: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    yield [{"order_id": order["id"], **line} for order in batch for line in order["lines"]]


@dlt.source
def shop(base_url: str, api_key: str, queue: str = "queue/events.jsonl") -> Any:
    placed = orders(base_url, api_key)
    return customers(base_url, api_key), events(queue), placed, placed | order_lines
