"""Local mode's settings: delivery overrides layer on the one-generation-at-a-time default."""

from __future__ import annotations

import json

import pytest

from t2v.broker.delivery import DeliveryOverride
from t2v.local.platform import LOCAL_INFER_PARALLELISM, LocalOptions


def test_infer_runs_one_at_a_time_by_default() -> None:
    options = LocalOptions.from_env({"T2V_LOCAL_PORT": "8123"})
    assert options.gateway_port == 8123
    assert options.delivery == {
        "t2v-infer-job": DeliveryOverride(parallelism=LOCAL_INFER_PARALLELISM)
    }


def test_overrides_keep_the_default_parallelism_unless_named() -> None:
    delivery = {"t2v-infer-job": {"retry": 0}, "*": {"backoff_delay_s": 0.2}}
    options = LocalOptions.from_env({"T2V_LOCAL_DELIVERY": json.dumps(delivery)})
    assert options.delivery["t2v-infer-job"] == DeliveryOverride(retry=0, parallelism=1)
    assert options.delivery["*"] == DeliveryOverride(backoff_delay_s=0.2)
    named = {"t2v-infer-job": {"parallelism": 3}}
    options = LocalOptions.from_env({"T2V_LOCAL_DELIVERY": json.dumps(named)})
    assert options.delivery["t2v-infer-job"].parallelism == 3


def test_unknown_delivery_field_is_an_error() -> None:
    with pytest.raises(TypeError):
        LocalOptions.from_env({"T2V_LOCAL_DELIVERY": json.dumps({"*": {"retries": 2}})})


def test_each_infer_worker_takes_one_job_at_a_time() -> None:
    options = LocalOptions.from_env({"T2V_INFER_WORKERS": "2"})
    assert options.infer_workers == 2
    assert options.delivery["t2v-infer-job"] == DeliveryOverride(parallelism=2)
