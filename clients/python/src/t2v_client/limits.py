"""The request fields and their limits, as the server's job contract sets them.

The server is the authority (it refuses a request past a limit with a clear error); this
table is what `--help` shows. The server's test suite compares it with the contract
(tests/client/test_limits.py), so a change of the contract that this table misses fails
the build there.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_PROMPT_CHARS = 2000
MAX_VIDEO_SECONDS = 10
SIDE_MULTIPLE = 16
MAX_SHORT_SIDE = 768
FRAME_GROUP = 6
MAX_SIDE = 1360
# The webhook fields (the CLI's --webhook and --webhook-event): not in FIELDS, which holds
# the video's own fields.
MAX_WEBHOOK_CHARS = 2048
WEBHOOK_EVENTS = ("start", "progress", "completed")
WEBHOOK_FIELDS = ("webhook", "webhook_events")


@dataclass(frozen=True)
class FieldLimit:
    name: str
    kind: type
    help: str
    minimum: float | None = None
    maximum: float | None = None
    # The value must be `multiple_of * k + offset` for some k.
    multiple_of: int | None = None
    offset: int = 0


def _side(name: str) -> FieldLimit:
    """width and height share one rule."""
    return FieldLimit(
        name,
        int,
        f"pixels, a multiple of {SIDE_MULTIPLE} from {SIDE_MULTIPLE} to {MAX_SIDE}; the shorter "
        f"side at most {MAX_SHORT_SIDE}",
        minimum=SIDE_MULTIPLE,
        maximum=MAX_SIDE,
        multiple_of=SIDE_MULTIPLE,
    )


FIELDS: dict[str, FieldLimit] = {
    f.name: f
    for f in (
        FieldLimit(
            "prompt",
            str,
            f"what the video shows: 1 to {MAX_PROMPT_CHARS} characters, no control characters "
            "but newline and tab",
            maximum=MAX_PROMPT_CHARS,
        ),
        FieldLimit(
            "negative_prompt",
            str,
            f"what to steer away from: at most {MAX_PROMPT_CHARS} characters",
            maximum=MAX_PROMPT_CHARS,
        ),
        FieldLimit(
            "num_frames",
            int,
            f"frames, of the form {FRAME_GROUP}k+1 (7, 13, ..., 163), at most "
            f"{MAX_VIDEO_SECONDS} s at --fps; not with --duration-s",
            minimum=1,
            multiple_of=FRAME_GROUP,
            offset=1,
        ),
        FieldLimit(
            "duration_s",
            float,
            f"seconds of video, over 0 and at most {MAX_VIDEO_SECONDS} (rounded to the nearest "
            f"{FRAME_GROUP}k+1 frames); not with --num-frames",
            minimum=0,
            maximum=MAX_VIDEO_SECONDS,
        ),
        _side("width"),
        _side("height"),
        FieldLimit("fps", int, "frames per second, 1 to 60", minimum=1, maximum=60),
        FieldLimit("num_inference_steps", int, "denoising steps, 2 to 200", minimum=2, maximum=200),
        FieldLimit(
            "guidance_scale", float, "classifier-free guidance, 0 to 20", minimum=0, maximum=20
        ),
        FieldLimit(
            "seed",
            int,
            "0 to 4294967295; the same seeded request gives the same video (default: random)",
            minimum=0,
            maximum=2**32 - 1,
        ),
    )
}
