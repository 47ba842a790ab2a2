"""An append-only JSON-lines record of what the broker received and delivered.

One line per ingress event and per delivery attempt outcome; tests and operators read it
to see retries, dead letters and replies without instrumenting the functions.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

from cloudevents.http import CloudEvent

_logger = logging.getLogger("t2v.broker")


class EventLog:
    """Writes records to ``path`` when given; always mirrors them to the ``t2v.broker`` logger."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()

    def record(self, kind: str, event: CloudEvent, **fields: object) -> None:
        line: dict[str, object] = {
            "ts": time.time(),
            "kind": kind,
            "id": event["id"],
            "source": event["source"],
            "type": event["type"],
            "subject": event.get("subject"),
            **fields,
        }
        _logger.debug("broker %s", line)
        if self._path is None:
            return
        text = json.dumps(line, sort_keys=True) + "\n"
        # Small appends under a lock: lines from concurrent workers never interleave.
        with self._lock, self._path.open("a", encoding="utf-8") as stream:
            stream.write(text)
