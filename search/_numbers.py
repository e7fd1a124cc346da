"""Numbers as people read them in a table or a sentence: a spread of 240 is written 240, not 2.4e+02."""
from __future__ import annotations

import math


def sig(x: float, digits: int = 2) -> str:
    """``x`` rounded to ``digits`` significant figures, in plain notation from 1e-4 up to 1e6.

    Python's ``:.2g`` writes 243 as ``2.4e+02``; beside a loss written ``3013`` that reads as a
    different kind of number. Outside that range the exponent is clearer than a row of zeros.
    """
    if not math.isfinite(x) or x == 0:
        return f"{x:g}"
    if not 1e-4 <= abs(x) < 1e6:
        return f"{x:.{digits}g}"
    return f"{round(x, digits - 1 - math.floor(math.log10(abs(x)))):g}"


_day_said: list[str] = []  # the day last written by stamp(), in this process


def stamp() -> str:
    """The time of a progress line, ``[HH:MM:SS]``, with the date on this process's first and on the first
    of each new day: an overnight log read in the morning went from 23:58 to 00:12 without saying which
    night, nor whether the run had been left for a day."""
    import time

    now = time.localtime()
    day, clock = time.strftime("%Y-%m-%d", now), time.strftime("%H:%M:%S", now)
    if _day_said == [day]:
        return f"[{clock}]"
    _day_said[:] = [day]
    return f"[{day} {clock}]"
