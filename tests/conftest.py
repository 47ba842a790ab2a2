"""Fixtures shared by every test folder."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from t2v.model.tiny import build_tiny_mochi
from tests.services import RedisServer, S3Server, redis_server, s3_server


@pytest.fixture(scope="session")
def tiny_seed() -> int:
    return 7


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_seed: int) -> pathlib.Path:
    """The tiny random Mochi, built once per session and saved with save_pretrained."""
    return build_tiny_mochi(tmp_path_factory.mktemp("models") / "tiny-mochi", seed=tiny_seed)


@pytest.fixture(scope="session")
def redis_service() -> Iterator[RedisServer]:
    """One real redis-server for the whole session; tests keep apart by key prefix."""
    with redis_server() as server:
        yield server


@pytest.fixture(scope="session")
def s3_service() -> Iterator[S3Server]:
    """One real S3-protocol server (moto) for the whole session; tests use their own buckets."""
    with s3_server() as server:
        yield server
