"""HTTP Range requests (RFC 9110) for one byte range, which is what video players send."""

from __future__ import annotations

from t2v.errors import RangeNotSatisfiableError


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Return [start, end) for a single `bytes=` range, None to send the whole body.

    Multiple ranges and other units are answered with the whole body, as RFC 9110 allows.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first == "":
            suffix = int(last)
            if suffix <= 0:
                raise RangeNotSatisfiableError(f"range {header!r} selects nothing", size=size)
            return max(0, size - suffix), size
        start = int(first)
        end = size if last == "" else min(int(last) + 1, size)
    except ValueError:
        return None
    if start >= size or start >= end:
        raise RangeNotSatisfiableError(
            f"range {header!r} is outside the {size}-byte video", size=size
        )
    return start, end
