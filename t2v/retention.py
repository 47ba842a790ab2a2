"""Retention: a video is kept `T2V_VIDEO_RETENTION_S` after its job finished (7 days by
default); the periodic sweep then expires it, and `DELETE /v1/jobs/{id}` removes a finished
job at once.

Videos are content-addressed (an identical seeded request reuses the stored file), so one
file may belong to several jobs: it is deleted only when the store says no job holds it any
more (`JobStore.count_video_holders`). The store is changed first and the file deleted after,
so a failure in between leaves an orphaned file, never a job whose video is gone unsaid.
"""

from __future__ import annotations

import logging

from t2v.jobs import Job
from t2v.runtime import Runtime

log = logging.getLogger(__name__)
# Videos expired per sweep (a minute apart): the rest wait for the next one.
EXPIRY_BATCH = 500


async def release_video(rt: Runtime, job: Job) -> bool:
    """Delete the video `job` held (before it was expired or deleted) when no job holds it
    now. True when the file was deleted."""
    key = job.video.key if job.video is not None else None
    if key is None or await rt.store.count_video_holders(key) > 0:
        return False
    await rt.artifacts.delete(key)
    return True


async def expire_videos(rt: Runtime, *, now: float) -> int:
    """Expire the videos whose retention has run out: how many jobs lost theirs."""
    cutoff = now - rt.settings.video_retention_s
    due = await rt.store.videos_finished_before(cutoff, limit=EXPIRY_BATCH)
    for job in due:
        await release_video(rt, await rt.store.expire_video(job.id))
    if due:
        log.info("retention: expired the videos of %d jobs", len(due))
    return len(due)


async def delete_job(rt: Runtime, job_id: str) -> Job:
    """Delete a finished job, and its video if no other job holds it."""
    job = await rt.store.delete(job_id)
    await release_video(rt, job)
    return job
