"""Buffered random hex: well-formed, never repeated, and not shared with a forked child."""

from __future__ import annotations

import os

from t2v.random_ids import random_hex


def test_each_call_hands_out_new_bytes_across_page_refills() -> None:
    values = [random_hex(10) for _ in range(2000)]  # 20 KB: several 4 KiB pages
    assert all(len(value) == 20 and int(value, 16) >= 0 for value in values)
    assert len(set(values)) == len(values)
    assert len(random_hex(5000)) == 10000  # more than a page at once


def test_a_forked_child_does_not_hand_out_the_parents_next_bytes() -> None:
    random_hex(8)  # the parent's buffer holds the rest of a page now
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next value and leave at once
        os.write(write_end, random_hex(8).encode())
        os._exit(0)
    os.close(write_end)
    child_value = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert len(child_value) == 16
    assert child_value != random_hex(8)
