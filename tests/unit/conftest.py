from tests.contracts.backends import (
    artifact_store,
    job_store,
    job_store_url,
)

__all__ = ["artifact_store", "job_store", "job_store_url"]
