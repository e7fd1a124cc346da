"""Time order in the data: data.order's times as a reader writes them, days a daily series lacks, and
provided test rows that are not later than the development rows."""
from __future__ import annotations

import numpy as np

from search.data._raw import Raw
from search.errors import DataError


def absent_days(distinct: np.ndarray, column: str) -> list[str]:
    """A daily series with days missing: its folds, gap and test rows count the days present, which a reader
    of the plan would take for calendar days."""
    if distinct.dtype.kind != "M" or len(distinct) < 3:
        return []
    import pandas as pd

    days = pd.DatetimeIndex(distinct)
    seconds = np.diff(days.values.astype("datetime64[s]").astype(np.int64))
    if not bool((days == days.normalize()).all()) or np.median(seconds) != 86_400:
        return []
    every = pd.date_range(days[0], days[-1], freq="D")
    absent = every.difference(days)
    if not len(absent):
        return []
    shown = ", ".join(d.strftime("%Y-%m-%d") for d in absent[:3]) + (", ..." if len(absent) > 3 else "")
    return [f"data.order '{column}': {len(absent)} of the {len(every)} days from {every[0]:%Y-%m-%d} to "
            f"{every[-1]:%Y-%m-%d} have no row ({shown}); the splits' blocks and validation.gap count the days "
            f"present, not calendar days"]


def time_labels(distinct: np.ndarray) -> list[str]:
    """data.order's distinct times as a reader writes them: dates without a time of day where none has one."""
    if distinct.dtype.kind == "M":
        import pandas as pd

        stamps = pd.DatetimeIndex(distinct)
        days = bool((stamps == stamps.normalize()).all())
        return [s.strftime("%Y-%m-%d") if days else s.isoformat(sep=" ") for s in stamps]
    return [str(int(v)) if isinstance(v, (int, float)) and float(v).is_integer() else  # 20230401 in full
            repr(v) if isinstance(v, float) else str(v) for v in distinct.tolist()]


def test_not_later(dev: Raw, test: Raw, column: str, label: str, test_label: str, where: str) -> list[str]:
    """Time-ordered test rows that do not come after every development row: the model would be tested on
    a past it may have learned the future of."""
    assert dev.order is not None and test.order is not None
    dates = [order.dtype.kind == "M" for order in (dev.order, test.order)]
    if dates[0] != dates[1]:
        kinds = ["dates" if d else "numbers" for d in dates]
        raise DataError(f"the order column '{column}' of {test_label} holds {kinds[1]} but that of {label} "
                        f"{kinds[0]}; their rows cannot be put in one time order", source=where, field="data.order",
                        expected=f"{kinds[0]} in both")
    latest = dev.order.max()
    early = int((test.order <= latest).sum())
    if not early:
        return []
    import pandas as pd

    shown = str(pd.Timestamp(latest)) if dates[0] else f"{latest:g}"
    return [f"{early} of the {len(test.order)} test rows of {test_label} are not later in time than the latest "
            f"development row ({column} {shown}); a model tested on times it trained after learns the 'future' "
            f"of its test rows, so the test score may be optimistic"]
