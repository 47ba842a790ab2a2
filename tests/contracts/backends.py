"""Fixtures that open each JobStore and ArtifactStore backend against a real server.

Shared by the contract suites and the stress tests (their conftest files re-export them).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import boto3
import pytest

from t2v.artifacts.base import ArtifactStore
from t2v.artifacts.filesystem import FilesystemArtifactStore
from t2v.artifacts.s3 import S3ArtifactStore
from t2v.store import JobStore, open_job_store
from tests.services import RedisServer, S3Server

JOB_STORES = ["sqlite", "redis"]
ARTIFACT_STORES = ["filesystem", "s3"]
# Small enough that a test object of a few MiB goes up in several parts (S3's minimum part).
S3_MULTIPART_BYTES = 5 * 1024 * 1024


def redis_store_url(server: RedisServer) -> str:
    # A fresh key prefix per store keeps tests apart on one server.
    return server.url(prefix=f"test-{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=JOB_STORES)
def job_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    return redis_store_url(request.getfixturevalue("redis_service"))


@pytest.fixture
async def job_store(job_store_url: str) -> AsyncIterator[JobStore]:
    store = open_job_store(job_store_url)
    try:
        yield store
    finally:
        await store.close()


def create_bucket(server: S3Server) -> str:
    bucket = f"t2v-test-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name=server.region,
        aws_access_key_id=server.access_key_id,
        aws_secret_access_key=server.secret_access_key,
    ).create_bucket(Bucket=bucket)
    return bucket


def open_s3_store(server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3ArtifactStore:
    for name, value in server.credentials_env().items():
        monkeypatch.setenv(name, value)
    bucket = create_bucket(server)
    return S3ArtifactStore.from_url(
        f"s3://{bucket}/videos?endpoint_url={server.endpoint_url}&region={server.region}"
        f"&path_style=1&expires=3600&multipart_mb={S3_MULTIPART_BYTES / 1024 / 1024}"
    )


@pytest.fixture(params=ARTIFACT_STORES)
def artifact_store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ArtifactStore:
    if request.param == "filesystem":
        return FilesystemArtifactStore.from_url(f"file://{tmp_path / 'artifacts'}")
    return open_s3_store(request.getfixturevalue("s3_service"), monkeypatch)
