"""Time order in the data: data.order's times as a reader writes them, days a daily series lacks, and
provided test rows that are not later than the development rows."""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from search.data._raw import Raw
from search.errors import DataError


def time_order(values: np.ndarray, column: str, what: str, where: str, notes: list[str]) -> np.ndarray:
    """Values that sort in time: numbers and timestamps as they are, dates written as text parsed.

    Text sorts by its characters, so ``12/31/2022`` would come after ``01/05/2024``: held-out rows and
    validation folds would no longer be the later ones. Text that is not dates in one format is refused.
    """
    import pandas as pd

    values = np.asarray(values)
    if values.dtype.kind in "biufmM":
        return values
    # A NaT among a frame's timestamps, or NaN among its texts, saved as the text 'NaT' or 'nan'.
    held = pd.Series(values, dtype=object)
    gaps = np.flatnonzero((held.isna() | held.astype(str).str.strip().isin(["NaT", "nan", "NaN", "None", ""]))
                          .to_numpy())
    if len(gaps):
        raise DataError(f"the order column '{column}' of {what} has {len(gaps)} missing value(s), in row(s) "
                        f"{', '.join(map(str, gaps[:5]))}{', ...' if len(gaps) > 5 else ''} (counting from 0): every "
                        f"row needs its time to be put in order; fill or drop them first", source=where,
                        field="data.order", expected="a time in every row", found="NaT/NaN")
    text = pd.Series(values).astype(str).str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    if len(text) and numbers.notna().all():  # numbers written as text (an npz of strings): their order
        return numbers.to_numpy()
    expected = "numbers, or dates written in one format in every row (such as 2024-01-31)"
    formats = date_formats(text.iloc[0]) if len(text) else []
    if not formats:
        raise DataError(f"the order column '{column}' of {what} holds text that is not a date, so its rows "
                        "cannot be put in time order", source=where, field="data.order", expected=expected,
                        found=text.iloc[0])
    readings = {fmt: _parsed(text, fmt) for fmt in formats}
    fits = {fmt: parsed for fmt, parsed in readings.items() if not parsed.isna().any()}
    if not fits:
        parsed = readings[formats[0]]
        bad = np.flatnonzero(parsed.isna().to_numpy())
        raise DataError(f"the order column '{column}' of {what} mixes '{text.iloc[0]}' with values in another form "
                        f"or not a date at all ({len(bad)} row(s), first at row {int(bad[0])}, counting from 0), so "
                        f"its rows cannot be put in time order", source=where, field="data.order",
                        expected=expected, found=text.iloc[int(bad[0])])
    (fmt, parsed), *others = fits.items()
    both = ""
    for other, again in others:
        if parsed.equals(again):  # two names of one reading (ISO8601 and %Y-%m-%d): nothing to tell apart
            continue
        # 03/04/2024 is March 4th month-first and April 3rd day-first: where every day is 12 or less, both
        # read every row, and only the writer knows which is meant. Refused when the two orders differ.
        if not np.array_equal(np.argsort(parsed.to_numpy(), kind="stable"),
                              np.argsort(again.to_numpy(), kind="stable")):
            raise DataError(f"the order column '{column}' of {what} holds dates such as '{text.iloc[0]}' that read "
                            f"as {fmt} and as {other} (no day past the 12th tells which), and the two put the "
                            f"rows in different orders; write them year first (2024-03-04)", source=where,
                            field="data.order", expected=expected, found=text.iloc[0])
        both = (f"; no day past the 12th tells it from {other}, which orders the rows alike but would show "
                f"other dates in the plan: write them year first (2024-03-04) if {fmt} is not meant")
    zoned = parsed.dt.tz is not None
    notes.append(f"order column '{column}' of {what} read as dates ({fmt}){both}"
                 + ("; times with a zone are put in order, and shown, in UTC" if zoned else ""))
    if zoned:
        parsed = parsed.dt.tz_convert(None)  # UTC instants as plain timestamps
    return parsed.to_numpy()


def _parsed(text: Any, fmt: str) -> Any:
    import warnings

    import pandas as pd

    with warnings.catch_warnings():  # pandas' guesses about day-first formats: the format is said in a note
        warnings.simplefilter("ignore")
        # Offsets (+01:00, Z) may differ between rows: compared in UTC, the instants keep their order.
        utc = "%z" in fmt or "Z" in fmt
        if fmt == "ISO8601":
            aware = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$")
            if aware.any() and not aware.all():  # a time without its offset is no one instant: not guessed
                return pd.to_datetime(text.where(aware), format=fmt, errors="coerce", utc=True)
            utc = bool(aware.any())
        try:
            return pd.to_datetime(text, format=fmt, errors="coerce", utc=utc)
        except ValueError:  # times with and without offsets
            return pd.Series(pd.NaT, index=text.index)


def date_formats(text: str) -> list[str]:
    """The formats the first value can be written in: month-first, then day-first where they differ,
    and ISO 8601 in any precision (a second with or without its fraction) for year-first timestamps."""
    import warnings

    try:
        from pandas.tseries.api import guess_datetime_format  # public from pandas 2.2
    except ImportError:
        from pandas._libs.tslibs.parsing import guess_datetime_format
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        guesses = [guess_datetime_format(text), guess_datetime_format(text, dayfirst=True)]
    formats = list(dict.fromkeys(g for g in guesses if g))
    if len(formats) == 2 and re.match(r"\s*\d{1,2}\.\d{1,2}\.\d", text):
        formats.reverse()  # 03.04.2024 is written day first where dots separate a date (de, ru, pl, tr, ...)
    if formats and formats[0].startswith("%Y-%m-%d"):
        formats.append("ISO8601")
    return formats


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


def far_times(order: np.ndarray, column: str, what: str) -> list[str]:
    """A few order values far beyond all the others (a date typed 2203 for 2023): the latest rows in time
    order are the test rows and the last validation blocks, so a typo decides which rows those are. Far: past
    a jump between neighbouring values that is larger than the span of everything on the other side (and
    twenty times the usual step), holding at most 2 % of the rows."""
    values = np.asarray(order)
    if values.dtype.kind == "M":
        numbers = values.astype("datetime64[ns]").astype(np.int64).astype(np.float64)
    elif values.dtype.kind in "biuf":
        numbers = values.astype(np.float64)
    else:
        return []
    distinct = np.unique(numbers[np.isfinite(numbers)])
    if len(distinct) < 10:
        return []
    steps = np.diff(distinct)
    jump = int(np.argmax(steps))
    if not steps[jump] > 20 * np.median(steps):
        return []
    out = []
    # The few values on one side of the largest jump, which is wider than the span of the rest.
    for end, far, near in (("latest", distinct[jump + 1:], distinct[:jump + 1]),
                           ("earliest", distinct[:jump + 1], distinct[jump + 1:])):
        rows = np.isin(numbers, far)
        if not (steps[jump] > near[-1] - near[0] > 0 and rows.sum() <= 0.02 * len(numbers)):
            continue
        shown = [_shown(v) for v in values[rows][:3]]
        lo, hi = _shown(values[numbers == near[0]][0]), _shown(values[numbers == near[-1]][0])
        role = ("are among the test rows and the last validation block" if end == "latest" else
                "start the first training block")
        out.append(f"the order column '{column}' of {what}: {int(rows.sum())} row(s) ({', '.join(shown)}) lie far "
                   f"{'after' if end == 'latest' else 'before'} all the others ({lo} to {hi}): a typo? As the "
                   f"{end} rows, they {role}; correct or drop them")
    return out


def _shown(value: Any) -> str:
    """A time as a person writes it: 2203-01-15, not 2203-01-15T00:00:00.000000."""
    if isinstance(value, np.datetime64):
        text = np.datetime_as_string(value, unit="s")
        return text.removesuffix("T00:00:00").replace("T", " ")
    return str(value)
