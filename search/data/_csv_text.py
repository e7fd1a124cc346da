"""Text in a CSV's feature columns: what it is (numbers written with marks, dates, a category, free text),
what to do with it, and gaps written as cells of spaces."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def blank_cells_as_missing(features: Any, path: Path, notes: list[str]) -> Any:
    """With data.missing set, a number column whose gaps are cells of spaces (a spreadsheet's " ") reads as
    numbers with missing cells, which the splits fill, as empty cells do; said in a note."""
    import pandas as pd

    for column in features.columns:
        values = features[column]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        text = values.astype("string").str.strip()
        blank = text.fillna("") == ""
        numbers = pd.to_numeric(text.mask(blank), errors="coerce")
        if blank.any() and numbers[~blank].notna().all() and (~blank).any():
            features[column] = numbers.astype(float)
            notes.append(f"column '{column}' of {path}: {int((blank & values.notna()).sum())} cell(s) of spaces "
                         f"only read as missing values, which data.missing fills")
    return features


def is_category(values: Any) -> bool:
    """A text column of few distinct values that are neither numbers with separators nor dates."""
    hint = text_column_hint(values, "")
    return hint.startswith("encode it as numbers first: a category")


def text_column_hint(values: Any, column: Any) -> str:
    """What to do with a text feature column, by what its cells look like."""
    import re

    from search.data._times import date_formats

    text = values.dropna().astype(str).str.strip()
    if text.empty:
        return "encode it as numbers first"
    numeric = text.str.replace(r"[,\s$€£%]", "", regex=True)
    # Accounting's negatives, (310.02): said to be free text, with advice to leave the column out.
    bracketed = numeric.str.fullmatch(r"\([-+]?\d*\.?\d+\)")
    if bracketed.any() and (bracketed | numeric.str.fullmatch(r"[-+]?\d*\.?\d+") | (numeric == "")).mean() > 0.9:
        example = text[bracketed].iloc[0]
        return (f"its negative numbers are written in parentheses, as accounting does, such as {example!r}: write "
                f"them with a minus sign ({'-' + example.strip('() ')} for {example}) so the column reads as "
                f"numbers")
    if (numeric.str.fullmatch(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?") | (numeric == "")).mean() > 0.9:
        strays = [v for v, n in zip(text, numeric) if not re.fullmatch(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", n)]
        stray = strays[0] if strays else None
        # A cell that had separators or signs; the one with the most, since in a file of decimal commas a cell
        # such as 769,0 has only its decimal mark and 1.317,0 shows the separator.
        marked = [v for v, n in zip(text, numeric) if v != n]
        signed = max(marked, key=lambda v: len(re.findall(r"[.,\s$€£%]", v))) if marked else None
        how = ("cells of spaces only" if stray == "" else f"cells {counted(strays)}" if stray is not None else
               f"thousands separators, currency or percent signs, such as {signed!r}" if signed is not None else
               "thousands separators, currency or percent signs")
        if stray == "":  # with data.missing set, such cells are read as missing (blank_cells_as_missing)
            return ("its numbers have cells of spaces only where values are missing: set data.missing (median or "
                    "mean) to read them as missing values each split fills, or fill them in the file")
        return (f"its numbers are written with {how}: remove them (or make them empty cells and set data.missing) "
                f"so the column reads as numbers")
    if date_formats(text.iloc[0]):
        return ("it holds dates: turn them into numbers first (days since a start, day of week, month), or name "
                "the column in data.order if it orders the rows in time")
    distinct = text.nunique()
    if distinct > max(20, len(text) // 2):
        return (f"it holds {distinct} different texts in {len(text)} rows (names, identifiers or free text), which "
                f"a network cannot use as they are: leave it out (data.drop: [{column}]), or encode it as numbers "
                f"first")
    return (f"encode it as numbers first: a category ({distinct} values) as one 0/1 column per value, "
            f"pandas.get_dummies(frame, columns=['{column}']), or set data.categorical: one_hot")


def counted(cells: list[str], most: int = 5) -> str:
    """The distinct texts among ``cells``, most common first, with their counts: every marker to replace at once."""
    from collections import Counter

    counts = Counter(cells).most_common()
    shown = ", ".join(f"{'(spaces)' if not v else repr(v)} ({n})" for v, n in counts[:most])
    return shown + (f" and {len(counts) - most} other text(s)" if len(counts) > most else "")
