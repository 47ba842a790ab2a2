"""Random hex for ids on the request path, from the OS's CSPRNG, a page at a time.

Every submit took three `getrandom` system calls (the job id, its event's id, the seed);
served under load on a VM, `new_job_id` alone was about 3% of a submit's CPU. The bytes are
still the OS's (`os.urandom`), read 4 KiB at a time and handed out once each. A forked child
(gunicorn forks its workers) starts with an empty buffer: two processes never hand out the
same bytes.
"""

from __future__ import annotations

import os
import threading

_PAGE = 4096


class _Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bytes = b""
        self._used = 0

    def hex(self, nbytes: int) -> str:
        with self._lock:
            if self._used + nbytes > len(self._bytes):
                self._bytes = os.urandom(max(_PAGE, nbytes))
                self._used = 0
            start = self._used
            self._used += nbytes
            return self._bytes[start : self._used].hex()

    def forget(self) -> None:
        """Drop what is buffered (called in a forked child, which has a copy of it)."""
        self._lock = threading.Lock()
        self._bytes = b""
        self._used = 0


_pool = _Pool()
os.register_at_fork(after_in_child=_pool.forget)


def random_hex(nbytes: int) -> str:
    """``nbytes`` bytes from the OS's CSPRNG as hex, never handed out twice."""
    return _pool.hex(nbytes)
