"""Calls made with room on CPython's frame stack map no memory however deep they go (search/_stack.py)."""
from __future__ import annotations

import sys

import pytest

from search._stack import call_with_room

resource = pytest.importorskip("resource")  # page-fault counts: POSIX only

pytestmark = pytest.mark.skipif(sys.implementation.name != "cpython" or sys.version_info < (3, 11),
                                reason="frames are kept in stack chunks from CPython 3.11 on")


def _down(n: int) -> int:
    return _down(n - 1) + 1 if n else 0


def _dives(times: int, depth: int) -> int:
    """Minor page faults while going ``depth`` frames down and back up, ``times`` times."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(times):
        _down(depth)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_deep_calls_with_room_stop_mapping_fresh_stack_chunks():
    # 500 frames are some 40 KB: without room, each dive maps new 16 KB chunks (fresh pages, each
    # faulted in on first touch) and unmaps them on the way back up.
    _dives(10, 500)
    without = _dives(2000, 500)
    with_room = call_with_room(_dives, 2000, 500)
    assert without > 2000, f"expected fresh stack chunks on every dive, saw {without} page faults"
    assert with_room * 20 < without, f"{with_room} page faults with room against {without} without"


def test_a_call_with_room_returns_its_value_and_raises_its_error():
    assert call_with_room(divmod, 7, 2) == (3, 1)
    assert call_with_room(sorted, [3, 1, 2], reverse=True) == [3, 2, 1]
    with pytest.raises(ZeroDivisionError):
        call_with_room(divmod, 1, 0)
