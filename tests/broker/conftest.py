"""Fixtures for broker tests: a recording subscriber and a broker started on real ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from t2v.broker import DeliveryOverride, create_broker_app, load_config
from tests.broker.harness import Recorder, read_log, serve, write_eventing


@dataclass(frozen=True)
class RunningBroker:
    url: str
    log_path: Path

    def log(self, kind: str | None = None) -> list[dict[str, Any]]:
        records = read_log(self.log_path)
        return [r for r in records if kind is None or r["kind"] == kind]


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as exit_stack:
        yield exit_stack


@pytest.fixture
def recorder(stack: ExitStack) -> tuple[Recorder, str]:
    """A recording subscriber and its base URL."""
    subscriber = Recorder()
    return subscriber, stack.enter_context(serve(subscriber.app()))


StartBroker = Callable[..., RunningBroker]


@pytest.fixture
def start_broker(stack: ExitStack, tmp_path: Path) -> StartBroker:
    """Start a broker for the given manifests; Services resolve through ``services``."""
    counter = iter(range(1000))

    def start(
        documents: list[dict[str, Any]],
        services: Mapping[str, str],
        *,
        delivery_overrides: Mapping[str, DeliveryOverride] | None = None,
        ping_interval_override_s: float | None = None,
    ) -> RunningBroker:
        index = next(counter)
        config = load_config(write_eventing(tmp_path / f"eventing-{index}", documents))
        log_path = tmp_path / f"broker-{index}.jsonl"
        app = create_broker_app(
            config,
            services,
            event_log=log_path,
            delivery_overrides=delivery_overrides,
            ping_interval_override_s=ping_interval_override_s,
        )
        return RunningBroker(stack.enter_context(serve(app)), log_path)

    return start
