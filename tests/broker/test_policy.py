"""Pure rules: which statuses are retried, backoff formulas, durations, cron schedules."""

from __future__ import annotations

import datetime as dt

import pytest

from t2v.broker import BackoffPolicy, BrokerConfigError, RetryPolicy, is_retryable
from t2v.broker.durations import parse_duration
from t2v.broker.ping import next_fire_time, schedule_step_minutes


@pytest.mark.parametrize("status", [None, 404, 408, 409, 429, 500, 502, 503, 504])
def test_retryable(status: int | None) -> None:
    assert is_retryable(status)


@pytest.mark.parametrize("status", [200, 202, 301, 400, 401, 403, 410, 413, 422])
def test_not_retryable(status: int) -> None:
    assert not is_retryable(status)


def test_exponential_backoff_doubles_from_twice_the_delay() -> None:
    policy = RetryPolicy(retry=5, backoff_policy=BackoffPolicy.EXPONENTIAL, backoff_delay_s=0.5)
    assert [policy.backoff_s(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, 16.0]


def test_linear_backoff_grows_by_the_delay() -> None:
    policy = RetryPolicy(retry=5, backoff_policy=BackoffPolicy.LINEAR, backoff_delay_s=2.5)
    assert [policy.backoff_s(n) for n in range(1, 4)] == [2.5, 5.0, 7.5]


def test_no_backoff_without_policy_and_delay() -> None:
    assert RetryPolicy(retry=3, backoff_delay_s=1.0).backoff_s(2) == 0.0
    assert RetryPolicy(retry=3, backoff_policy=BackoffPolicy.LINEAR).backoff_s(2) == 0.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("PT0.5S", 0.5), ("PT10M", 600.0), ("PT1H30M", 5400.0), ("P1DT1S", 86401.0), ("pt2s", 2.0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "P", "PT", "P1DT", "10s", "PT-1S", "P1M", "P1Y"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_duration(text)


def test_cron_schedules() -> None:
    assert schedule_step_minutes("* * * * *") == 1
    assert schedule_step_minutes("*/15 * * * *") == 15
    for unsupported in ["0 * * * *", "*/5 1 * * *", "@hourly", "* * * *", "*/0 * * * *"]:
        with pytest.raises(BrokerConfigError, match="unsupported PingSource schedule"):
            schedule_step_minutes(unsupported)


def test_next_fire_time_lands_on_the_step() -> None:
    now = dt.datetime(2025, 1, 1, 10, 7, 30, tzinfo=dt.UTC)
    assert next_fire_time(now, 1) == dt.datetime(2025, 1, 1, 10, 8, tzinfo=dt.UTC)
    assert next_fire_time(now, 15) == dt.datetime(2025, 1, 1, 10, 15, tzinfo=dt.UTC)
    on_the_minute = dt.datetime(2025, 1, 1, 10, 15, tzinfo=dt.UTC)
    assert next_fire_time(on_the_minute, 15) == dt.datetime(2025, 1, 1, 10, 30, tzinfo=dt.UTC)
