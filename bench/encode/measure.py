"""One encode in a fresh process: ``python -m bench.encode.measure ENCODER T H W FPS VIDEO``.

Prints one JSON object: wall time, CPU time and peak memory of the encode alone, and the file
size. A fresh process per encode keeps one encoder's allocations, caches and imports out of
the other's figures.

Memory: tracemalloc sees only Python's allocator, not OpenH264's or FFmpeg's buffers, so this
reads the kernel's counters. After the imports and the frames are ready, the process's peak
RSS (``VmHWM``) is reset by writing ``5`` to ``/proc/self/clear_refs``; the encode's own peak
is then ``VmHWM`` after it minus ``VmRSS`` before it. The imageio path pipes the frames to an
``ffmpeg`` child process. Its ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` is useless here:
imageio-ffmpeg starts it with a ``preexec_fn``, so Python forks (no vfork) and the child's
maximum includes the Python parent's pages from before ``exec``. Instead a thread reads each
child's own ``VmHWM`` (its peak since ``exec``, which only grows) every 10 ms until it exits,
skipping it until it has exec'd. The largest child peak and the process peak are added: an
upper bound, as the two peaks need not coincide.
"""

from __future__ import annotations

import json
import pathlib
import re
import resource
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench.encode.frames import Frames, moving_frames

Encode = Callable[[], None]

# diffusers' default export quality (5 of 10) is what imageio-ffmpeg turns into libx264 -crf 25.
EXPORT_QUALITY = 5.0


def _status_kib(field: str, pid: int | str = "self") -> int | None:
    """A ``kB`` field of ``/proc/<pid>/status``; None once the process is gone or a zombie."""
    try:
        text = pathlib.Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return None if found is None else int(found.group(1))


def _own_kib(field: str) -> int:
    value = _status_kib(field)
    if value is None:
        raise RuntimeError(f"/proc/self/status has no {field}")
    return value


def _child_pids() -> set[int]:
    """Direct children of every thread of this process (cheap: no scan of all of /proc)."""
    pids: set[int] = set()
    for listing in pathlib.Path("/proc/self/task").glob("*/children"):
        try:
            pids.update(int(pid) for pid in listing.read_text().split())
        except OSError:
            continue  # the thread ended between the glob and the read
    return pids


def _has_exec(pid: int) -> bool:
    try:
        return (
            pathlib.Path(f"/proc/{pid}/exe").resolve() != pathlib.Path("/proc/self/exe").resolve()
        )
    except OSError:
        return False


@contextmanager
def children_peak_kib(poll_s: float = 0.01) -> Iterator[dict[int, int]]:
    """Yield a dict that fills with each child process's own peak RSS (KiB) while the block
    runs; children are polled until they exit or the block ends."""
    peaks: dict[int, int] = {}
    done = threading.Event()

    def poll() -> None:
        while True:
            for pid in _child_pids():
                if not _has_exec(pid):
                    continue  # between fork and exec its counters are this process's pages
                peak = _status_kib("VmHWM", pid)
                if peak is not None:
                    peaks[pid] = max(peak, peaks.get(pid, 0))
            if done.wait(poll_s):
                return

    watcher = threading.Thread(target=poll, name="child-peak-rss", daemon=True)
    watcher.start()
    try:
        yield peaks
    finally:
        done.set()
        watcher.join()


def _cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _rust_infer(frames: Frames, fps: int, video: pathlib.Path) -> Encode:
    import rust_infer

    def encode() -> None:
        video.write_bytes(rust_infer.encode_mp4(frames, fps))

    return encode


def _export_to_video(frames: Frames, fps: int, video: pathlib.Path) -> Encode:
    from diffusers.utils.export_utils import export_to_video
    from PIL import Image

    # PIL images are what diffusers' video pipelines return by default (output_type="pil"),
    # so building them belongs to the pipeline, not to the export being measured.
    images = [Image.fromarray(frame) for frame in frames]

    def encode() -> None:
        export_to_video(images, str(video), fps=fps, quality=EXPORT_QUALITY)

    return encode


def _imageio_one_thread(frames: Frames, fps: int, video: pathlib.Path) -> Encode:
    import imageio

    def encode() -> None:
        # export_to_video's own writer call, with libx264 held to one thread: for reference
        # against OpenH264, which rust_infer runs on one thread.
        writer: Any
        with imageio.get_writer(
            str(video),
            fps=fps,
            quality=EXPORT_QUALITY,
            macro_block_size=16,
            output_params=["-threads", "1"],
        ) as writer:
            for frame in frames:
                writer.append_data(frame)

    return encode


ENCODERS: dict[str, Callable[[Frames, int, pathlib.Path], Encode]] = {
    "rust_infer": _rust_infer,
    "export_to_video": _export_to_video,
    "imageio_x264_1_thread": _imageio_one_thread,
}


def measure(
    name: str, num_frames: int, height: int, width: int, fps: int, video: pathlib.Path
) -> dict[str, float | int]:
    frames = moving_frames(num_frames, height, width)
    encode = ENCODERS[name](frames, fps, video)
    rss_before = _own_kib("VmRSS")
    pathlib.Path("/proc/self/clear_refs").write_text("5")
    cpu_before = _cpu_s(resource.RUSAGE_SELF), _cpu_s(resource.RUSAGE_CHILDREN)
    with children_peak_kib() as child_peaks:
        started = time.perf_counter()
        encode()
        wall_s = time.perf_counter() - started
    # The watcher thread's own stack is in this figure too; it is a few hundred KiB at most.
    process_peak_kib = _own_kib("VmHWM") - rss_before
    # The children run one after another (a version check, then the encoder): the largest.
    child_peak_kib = max(child_peaks.values(), default=0)
    return {
        "wall_s": wall_s,
        "cpu_s": _cpu_s(resource.RUSAGE_SELF) - cpu_before[0],
        "child_cpu_s": _cpu_s(resource.RUSAGE_CHILDREN) - cpu_before[1],
        "process_peak_mib": process_peak_kib / 1024,
        "child_peak_mib": child_peak_kib / 1024,
        "peak_mib": (process_peak_kib + child_peak_kib) / 1024,
        "bytes": video.stat().st_size,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 6 or argv[0] not in ENCODERS:
        print(__doc__, file=sys.stderr)
        print(f"encoders: {', '.join(ENCODERS)}", file=sys.stderr)
        return 2
    name, num_frames, height, width, fps, video = argv
    result = measure(name, int(num_frames), int(height), int(width), int(fps), pathlib.Path(video))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
