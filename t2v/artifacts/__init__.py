"""Artifact stores: a directory by default, S3/MinIO on a cluster, chosen by URL."""

from __future__ import annotations

from t2v.artifacts.base import ArtifactStore, StoredArtifact

__all__ = ["ArtifactStore", "StoredArtifact", "open_artifact_store"]


def open_artifact_store(url: str) -> ArtifactStore:
    if url.startswith("file://"):
        from t2v.artifacts.filesystem import FilesystemArtifactStore

        return FilesystemArtifactStore.from_url(url)
    if url.startswith("s3://"):
        from t2v.artifacts.s3 import S3ArtifactStore

        return S3ArtifactStore.from_url(url)
    raise ValueError(f"unsupported artifact store URL {url!r} (use file:///dir or s3://bucket)")
