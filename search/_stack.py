"""Room on CPython's frame stack, so that deep call chains stop mapping and unmapping memory.

CPython 3.11 and later keep Python frames in chunks of 16 KB and give a chunk back to the system
(``munmap``) as soon as the frame at its base returns. Tracing a TensorFlow graph calls hundreds of
functions deep; wherever that depth swings back and forth across a chunk boundary, every crossing maps
a chunk and unmaps it again. Where the boundary falls depends on how deep the caller already is, so the
same training ran at different speeds from different callers: measured (docs/performance.md), a trial's
fit 7 % slower when called 15 frames deeper, the depth of a trial loop inside Optuna's ``optimize``, and
40,000 to 80,000 mmap/munmap pairs in a few trials.

:func:`call_with_room` runs a call under one frame that reserves a large stack. CPython gives that
frame a chunk of its own, rounded up to twice the reservation, and every frame below it fits in the
rest, so nothing is mapped or unmapped until the call returns.
"""
from __future__ import annotations

import sys
import types
from typing import Any, Callable, TypeVar

T = TypeVar("T")
# Words (8 bytes each) the frame reserves: 320 KB. CPython allocates the chunk for it in powers of two
# from 16 KB, so it gets 512 KB and 190 KB is left below it: room for thousands of frames.
ROOM_WORDS = 40_000


def _call(fn: Any, args: Any, kwargs: Any) -> Any:
    return fn(*args, **kwargs)


def _roomy() -> Any:
    if sys.implementation.name != "cpython" or sys.version_info < (3, 11):  # frames not kept in chunks
        return _call
    try:
        return types.FunctionType(_call.__code__.replace(co_stacksize=ROOM_WORDS), _call.__globals__,
                                  "_call_with_room")
    except (AttributeError, TypeError, ValueError):
        return _call


_call_with_room = _roomy()


def call_with_room(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, with every frame it calls kept in one chunk of CPython's frame stack."""
    return _call_with_room(fn, args, kwargs)
