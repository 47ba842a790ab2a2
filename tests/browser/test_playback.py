"""rust_infer's MP4 files play in headless Chromium (Debian's, driven by playwright-core).

The files are served over HTTP on 127.0.0.1 by Starlette's ``FileResponse``, with its Range
support, as the status function serves local videos, and ``play_videos.mjs`` loads each into
a ``<video>`` element, plays it muted at a higher rate and reports what the element saw.
Needs ``chromium`` on PATH, ``node``, and ``npm ci`` run at the repository root; the tests
fail, not skip, without them.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Mount
from starlette.types import Message, Receive, Scope, Send

import rust_infer
from bench.encode.frames import moving_frames
from tests.broker.harness import serve

pytestmark = pytest.mark.e2e

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
PLAYER_SCRIPT = pathlib.Path(__file__).with_name("play_videos.mjs")
PLAYBACK_RATE = 4.0
TIMEOUT_MS = 30_000
PAGE = b"<!doctype html><html><head><title>t2v playback</title></head><body></body></html>"


@dataclass(frozen=True)
class Clip:
    name: str
    num_frames: int
    height: int
    width: int
    fps: int

    @property
    def path(self) -> str:
        return f"/videos/{self.name}.mp4"


CLIPS = (
    Clip("small-landscape", 7, 48, 64, 30),
    Clip("portrait-24fps", 19, 224, 128, 24),
    Clip("mochi-shape", 31, 480, 848, 30),
    Clip("one-frame", 1, 48, 80, 30),
    Clip("smallest", 5, 16, 16, 10),
)
# An MP4 whose boxes are all overwritten: the harness must report it as an error, which shows
# that the checks below can fail.
DAMAGED = "/videos/damaged.mp4"


@dataclass
class ServedRequest:
    path: str
    range_header: str | None
    status: int


@dataclass
class VideoServer:
    """Serves fixed files from a directory on 127.0.0.1 and records every request."""

    directory: pathlib.Path
    content_types: dict[str, str]
    base_url: str = ""
    requests: list[ServedRequest] = field(default_factory=list)
    requests_lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        range_header = Headers(scope=scope).get("range")

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                with self.requests_lock:
                    self.requests.append(ServedRequest(path, range_header, message["status"]))
            await send(message)

        content_type = self.content_types.get(path)
        response: Response = PlainTextResponse("not found", status_code=404)
        if content_type is not None:
            response = FileResponse(self.directory / path.lstrip("/"), media_type=content_type)
        await response(scope, receive, recording_send)


def _required_tools() -> tuple[str, str]:
    chromium = shutil.which("chromium")
    node = shutil.which("node")
    missing = []
    if chromium is None:
        missing.append("Chromium (Debian: apt-get install chromium)")
    if node is None:
        missing.append("Node.js (Debian: apt-get install nodejs npm)")
    if not (REPO_ROOT / "node_modules" / "playwright-core" / "package.json").is_file():
        missing.append("playwright-core (run `npm ci` in the repository root)")
    if missing:
        pytest.fail("the browser tests need " + "; ".join(missing), pytrace=False)
    assert chromium is not None and node is not None
    return chromium, node


def _damaged_mp4() -> bytes:
    valid = rust_infer.encode_mp4(moving_frames(3, 32, 32), 30)
    return bytes(byte ^ 0x5A for byte in valid)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VideoServer]:
    bodies: dict[str, tuple[bytes, str]] = {"/index.html": (PAGE, "text/html; charset=utf-8")}
    for clip in CLIPS:
        frames = moving_frames(clip.num_frames, clip.height, clip.width)
        bodies[clip.path] = (rust_infer.encode_mp4(frames, clip.fps), "video/mp4")
    bodies[DAMAGED] = (_damaged_mp4(), "video/mp4")
    directory = tmp_path_factory.mktemp("served")
    for path, (body, _) in bodies.items():
        (directory / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (directory / path.lstrip("/")).write_bytes(body)
    server = VideoServer(directory, {path: kind for path, (_, kind) in bodies.items()})
    # Starlette answers the lifespan protocol; every HTTP request goes to the server.
    with serve(Starlette(routes=[Mount("/", app=server)])) as base_url:
        server.base_url = base_url
        yield server


@pytest.fixture(scope="module")
def playback(served: VideoServer) -> dict[str, Any]:
    """One Chromium run over every clip; the report keyed by path, plus browser facts."""
    chromium, node = _required_tools()
    paths = [clip.path for clip in CLIPS] + [DAMAGED]
    request = {
        "chromium": chromium,
        "page": served.base_url + "/index.html",
        "videos": [served.base_url + path for path in paths],
        "playback_rate": PLAYBACK_RATE,
        "timeout_ms": TIMEOUT_MS,
    }
    completed = subprocess.run(
        [node, str(PLAYER_SCRIPT)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=TIMEOUT_MS / 1000 * (len(paths) + 2),
        check=False,
    )
    assert completed.returncode == 0, f"{PLAYER_SCRIPT.name} failed:\n{completed.stderr[-4000:]}"
    report = json.loads(completed.stdout)
    by_path = {path: result for path, result in zip(paths, report["results"], strict=True)}
    return {"browser": report["browser"], "h264": report["h264"], "by_path": by_path}


def test_chromium_can_play_h264(playback: dict[str, Any]) -> None:
    assert playback["h264"] == "probably", f"Chromium {playback['browser']} lacks H.264"


@pytest.mark.parametrize("clip", CLIPS, ids=[clip.name for clip in CLIPS])
def test_video_loads_and_plays_to_the_end(playback: dict[str, Any], clip: Clip) -> None:
    result = playback["by_path"][clip.path]
    at_load = result["at_load"]
    assert result["error"] is None, result
    assert at_load["outcome"] == "loadeddata", result
    assert at_load["ready_state"] >= 2, result  # HAVE_CURRENT_DATA: a frame can be shown
    assert (at_load["video_width"], at_load["video_height"]) == (clip.width, clip.height)
    expected_s = clip.num_frames / clip.fps
    assert abs(at_load["duration"] - expected_s) <= 0.5 / clip.fps, result
    assert result["end_outcome"] == "ended" and result["ended"], result
    # play() of a clip shorter than its first frame's display can settle after the end.
    assert result["play_error"] is None or result["play_error"].startswith("AbortError"), result
    assert abs(result["current_time"] - expected_s) <= 0.5 / clip.fps, result
    # Displayed plus dropped frames: every sample of the file reached the renderer.
    assert result["decoded_frames"] == clip.num_frames, result


def test_a_damaged_file_is_reported_as_an_error(playback: dict[str, Any]) -> None:
    result = playback["by_path"][DAMAGED]
    assert result["error"] is not None, result
    assert result["at_load"]["outcome"] == "error"
    assert not result["ended"]


def test_the_browser_fetches_videos_by_range(playback: dict[str, Any], served: VideoServer) -> None:
    with served.requests_lock:
        requests = [r for r in served.requests if r.path == "/videos/mochi-shape.mp4"]
    assert requests, "Chromium never requested the video"
    assert all(r.status in (200, 206) for r in requests), requests
    assert any(r.range_header is not None and r.status == 206 for r in requests), requests
