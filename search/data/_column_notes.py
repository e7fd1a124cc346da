"""Notes on feature columns that are most likely not measurements: a column that names or counts the rows,
one named or written as a code (a zip code, a phone number, 000123), and one that holds one value in every
row."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

# customer_no, CustomerID, order_nr, patient-id, record number, uuid: names of columns that name the rows.
_ID_NAME = re.compile(r"(?i:(?:^|[\W_])(?:id|no|nr|num|number|key|uuid)$|^(?:id|uuid|key)(?:[\W_]|$))"
                      r"|[a-z](?:ID|Id|No|Nr)$")

# zip, ZipCode, postal_code, PLZ, fips, area_code, phone, product_code: numbers that name, not amounts.
_CODE_NAME = re.compile(r"(?:zip|zipcode|postcode|postalcode|plz|fips|phone|phonenumber|telephone|code)$")


def constant_columns(features: Any, path: Path) -> list[str]:
    """Feature columns that hold one value in every row (a missing value apart): they carry nothing to learn."""
    same = [str(c) for c in features.columns if features[c].nunique(dropna=True) == 1]
    if not same or len(features) < 2:
        return []
    return [f"column(s) {', '.join(map(repr, same[:5]))}{', ...' if len(same) > 5 else ''} of {path} hold one value "
            f"in every row: nothing to learn from (data.drop leaves them out)"]


# Values exports write for "missing" in a numeric column (SPSS, SAS, old lab systems).
_SENTINELS = (-99999.0, -9999.0, -999.0, -99.0, 999.0, 9999.0, 99999.0)


def missing_codes(features: Any, path: Path) -> list[str]:
    """Numeric columns where -999 (or 9999, -99, ...) stands apart from every other value, repeated: a code for
    "missing" read as a measurement (a standardized N(0, 1) column became a 0/1 flag of the coded rows)."""
    import pandas as pd

    said = []
    for column in features.columns:
        values = features[column]
        if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            continue
        kept = values.dropna().to_numpy(dtype=float)
        for code in _SENTINELS:
            coded = kept == code
            rest = kept[~coded]
            if coded.sum() < 2 or len(rest) < 10:
                continue
            low, high = np.percentile(rest, [1, 99])
            spread = max(high - low, 1e-12)
            if code < low - 10 * spread or code > high + 10 * spread:
                said.append(f"column '{column}' of {path} holds {code:g} in {int(coded.sum())} rows, far outside its "
                            f"other values ({rest.min():.3g} to {rest.max():.3g}): a code for a missing value? Read as "
                            f"a number, it outweighs the rest once scaled; make those cells empty and set data.missing "
                            f"(median or mean) to have each split fill them")
                break
    return said


def row_counters(features: Any, path: Path) -> list[str]:
    """Feature columns that count the rows (1, 2, 3, ... in file order), or that are named and valued as an
    identifier: most likely names of the rows, not measurements."""
    out = []
    for column in features.columns:
        values = features[column].to_numpy()
        if len(values) < 10 or values.dtype.kind not in "iu":
            continue
        if bool(np.all(np.diff(values) == 1)):
            how = f"counts the rows ({values[0]}, {values[1]}, {values[2]}, ...)"
        elif values.max() - values.min() == len(values) - 1 and len(np.unique(values)) == len(values):
            how = f"numbers the rows in another order (each of {values.min()} to {values.max()} once)"
        elif _ID_NAME.search(str(column)) and len(np.unique(values)) == len(values):
            how = "is named as an identifier and holds a different whole number in every row"
        else:
            continue
        out.append(f"column '{column}' of {path} {how} and is used as a feature; if it only names the rows, "
                   f"drop it (data.drop: [{column}]; it carries no signal, or a leak where the rows were sorted "
                   f"by the target or by time)")
    return out


def code_columns(features: Any, path: Path, said: list[str]) -> list[str]:
    """Whole-number feature columns named as codes (a zip code, a phone number, any ``*_code``): the model
    reads them as amounts, so 90210 counts as more than 10001. Columns already in ``said`` are left out."""
    out = []
    for column in features.columns:
        values = features[column].to_numpy()
        compact = re.sub(r"[\W_]", "", str(column).lower())
        if (values.dtype.kind not in "iu" or not _CODE_NAME.search(compact) or len(np.unique(values)) < 3
                or _said(column, said)):
            continue
        out.append(f"column '{column}' of {path} is named as a code and holds whole numbers, which the model "
                   f"reads as amounts ({values.min()} less than {values.max()}, near numbers alike); if they "
                   f"name places or kinds, drop it (data.drop: [{column}]), or, where its values are few, write "
                   f"them as text (a letter in front) and set data.categorical: one_hot")
    return out


def zero_padded(frame: Any, path: Path, shape: Any) -> dict[str, str]:
    """Whole-number columns whose cells are written with leading zeros (``000123``, ``02139``), by the column
    name pandas read, with one such cell: pandas reads them as numbers and the zeros are gone."""
    whole = [i for i, c in enumerate(frame.columns) if frame[c].dtype.kind in "iu"]
    if not whole:
        return {}
    try:
        texts = shape.texts(path)
    except Exception:  # read as it was once already: nothing here is worth a second error
        return {}
    out = {}
    for i in whole:
        if i >= texts.shape[1]:
            continue
        cells = texts.iloc[:, i].str.strip()
        zeros = cells[cells.str.fullmatch(r"0\d+")]
        if len(zeros):
            out[str(frame.columns[i]).strip()] = str(zeros.iloc[0])
    return out


def padded_codes(features: Any, padded: dict[str, str], path: Path, said: list[str]) -> list[str]:
    """Feature columns written with leading zeros: codes (account numbers, zip codes), read as amounts."""
    return [f"column '{column}' of {path} writes its numbers with leading zeros ({padded[column]!r}): a code "
            f"(an account or zip code), which the model reads as an amount; if it names rows, places or kinds, drop "
            f"it (data.drop: [{column}])"
            for column in map(str, features.columns)
            if column in padded and not _said(column, said)]


def _said(column: Any, notes: list[str]) -> bool:
    """Whether a note about ``column`` is among ``notes`` already: one note per column."""
    return any(f"column '{column}' of" in line for line in notes)


# patient, subject_id, customer, store, user: columns that name who or what a row was measured on.
_ENTITY_NAME = re.compile(r"(?i)(?:^|[\W_])(?:patient|subject|participant|person|customer|client|user|member|store|"
                          r"shop|household|account|device|sensor|machine|site|hospital|school|company|animal|mouse|"
                          r"plant|farm|player|team)s?(?:[\W_]?(?:id|no|nr|code|key|name))?$")


def repeated_ids(frame: Any, path: Path, skip: list[Any]) -> list[str]:
    """A column named as an identifier or as who a row was measured on (``patient``, ``customer_id``) whose values
    repeat over the rows: rows of one patient are alike, and plain k-fold puts some of them on both sides of
    every split, so the validation score is one no new patient will see. Said where no data.group is set."""
    import pandas as pd

    out = []
    for column in frame.columns:
        name = str(column)
        if column in skip or not (_ID_NAME.search(name) or _ENTITY_NAME.search(name)):
            continue
        values = frame[column].dropna()
        if pd.api.types.is_float_dtype(values) and not np.all(values == np.round(values)):
            continue  # measurements, not names
        counts = values.astype(str).value_counts()
        # A few sites or stores are a category of the rows; ten or more named ones, the units measured.
        fewest = 3 if _ID_NAME.search(name) else 10
        if len(counts) < fewest or len(counts) * 2 > len(values) or (counts > 1).sum() * 2 < len(counts):
            continue
        out.append(f"column '{name}' of {path} names {len(counts)} different values over {len(values)} rows "
                   f"({len(values) / len(counts):.1f} rows each on average): if they are the same {name}'s rows, "
                   f"they are alike, and plain k-fold puts some of them on both sides of every split, so the "
                   f"validation score is one that no new {name} will see; set data.group: {name} with "
                   f"validation.scheme: group_kfold to keep each one's rows on one side")
    return out


# A column named as a time: a stamp, a date as a number, a day count.
_TIME_NAME = re.compile(r"(?i)(?:^|[\W_])(?:ts|time|times|timestamp|datetime|date|day|days|epoch|unix|unixtime|"
                        r"seconds|hour|hours|week|month|year)(?:[\W_]?(?:stamp|s|ms|ns|utc|id|no|index))?$")


def time_ordered(frame: Any, path: Path, skip: list[Any]) -> list[str]:
    """A numeric column named as a time that rises with the rows: the file is in time order, and drawn at random
    the test and validation rows sit among the training rows' times, so a model that leans on what came later
    scores better than it will on the future (a stranger's transactions sorted by their stamp, split at random,
    got no word; a stamp written as text is refused with the advice to set data.order). Said where no data.order
    or data.group is set."""
    import pandas as pd

    import warnings

    out = []
    for column in frame.columns:
        name = str(column)
        if column in skip or not _TIME_NAME.search(name):
            continue
        if pd.api.types.is_numeric_dtype(frame[column]):
            values = frame[column].dropna().to_numpy(dtype=np.float64)
        else:  # stamps as text, left out with data.drop: the rows are in their order all the same
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                stamps = pd.to_datetime(frame[column], errors="coerce", format="mixed")
            if stamps.notna().mean() < 0.95:
                continue
            values = stamps.dropna().astype("int64").to_numpy(dtype=np.float64)
        if len(np.unique(values)) < 10 or len(values) < 20:
            continue
        steps = np.diff(values)
        if np.mean(steps >= 0) < 0.99 or not np.any(steps > 0):
            continue
        out.append(f"column '{name}' of {path} rises with the rows: the rows are in time order, and drawn at random "
                   f"the test rows and each split's validation rows sit among the training rows' times, so a model "
                   f"that leans on what came later scores better than it will on the future; set data.order: {name} "
                   f"(the test rows are then the latest) with validation.scheme: time_series, or say why not by "
                   f"shuffling the file")
    return out
