"""ISO 8601 durations as Knative's delivery spec writes them (``PT0.5S``, ``PT10M``, ``P1DT2H``)."""

from __future__ import annotations

import re

# Years and months have no fixed length, so Knative's parser rejects them for delivery
# durations too; weeks and days are exact.
_DURATION = re.compile(
    r"^P(?!$)"
    r"(?:(?P<weeks>\d+(?:\.\d+)?)W)?"
    r"(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?!$)"
    r"(?:(?P<hours>\d+(?:\.\d+)?)H)?"
    r"(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)

_SECONDS_PER_UNIT = {
    "weeks": 7 * 86400.0,
    "days": 86400.0,
    "hours": 3600.0,
    "minutes": 60.0,
    "seconds": 1.0,
}


def parse_duration(text: str) -> float:
    """Return the length of an ISO 8601 duration in seconds.

    Raises ``ValueError`` for anything that is not ``P[nW][nD][T[nH][nM][nS]]``.
    """
    match = _DURATION.match(text.strip().upper())
    if match is None:
        raise ValueError(f"not an ISO 8601 duration (expected e.g. PT0.5S): {text!r}")
    return sum(
        float(value) * _SECONDS_PER_UNIT[unit]
        for unit, value in match.groupdict().items()
        if value is not None
    )
