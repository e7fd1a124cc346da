"""A CSV's target column as strangers write it: numbers pandas read as text, labels written two ways."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from search.errors import DataError

_NUMBER = r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?"


def holds_text(values: Any) -> bool:
    """A column pandas read as text: ``str`` in pandas 3, ``object`` before."""
    import pandas as pd

    return bool(pd.api.types.is_string_dtype(values) or pd.api.types.is_object_dtype(values))


def number_target_as_text(values: Any, column: str, task: str, path: Path, where: str) -> None:
    """A target of numbers that pandas read as text, for a few cells such as ``?`` or for separators
    (``1.600,00``, ``$1,994``): as labels every amount would be a class of its own. Said here, naming the
    cells, unless ``data.task: classification`` says the texts are labels."""
    if task == "classification" or not holds_text(values):
        return
    text = values.dropna().astype(str).str.strip()
    text = text[text != ""]
    if len(text) < 2:
        return
    plain = text.str.fullmatch(_NUMBER)
    written = text.str.replace(r"[,.\s$€£%'’]", "", regex=True).str.fullmatch(r"[-+]?\d+(?:[eE][-+]?\d+)?")
    if (plain | written).mean() < 0.9:
        return  # words, with a number here and there: labels
    stray = text[~(plain | written)]
    if len(stray):
        shown = ", ".join(repr(v) for v in dict.fromkeys(stray.tolist()[:20]))
        how = f"cells such as {shown} ({len(stray)} in all, first at row {int(stray.index[0])}, counting from 0)"
        fix = ("fill or delete those rows (if they mean a missing value), or fix them so the column reads as "
               "numbers")
    elif (~plain).any():
        sample = text[~plain].iloc[0]
        how = f"separators or signs such as {sample!r}"
        fix = "write them as plain numbers (1600.00), so the column reads as numbers"
    else:  # every cell a plain number with a dot, in a file read with decimal commas
        sample = text.iloc[0]
        how = f"dots ({sample!r}) in a file whose other numbers have a decimal comma"
        fix = (f"write the column as the other columns are written ({sample.replace('.', ',')} if the dot is a "
               f"decimal point, {sample.replace('.', '')} if it separates thousands)")
    raise DataError(f"target '{column}' of {path} holds numbers, but it is read as text for its {how}: as text, "
                    f"each value would be a class of its own; {fix}; or, if the values are class labels, set "
                    f"data.task: classification", source=where, field="data.target", expected="numbers",
                    found=stray.iloc[0] if len(stray) else sample)


def mixed_codings(values: Any, column: str, path: Path) -> list[str]:
    """Labels written partly as numbers and partly as words (``yes``/``no`` in some rows, ``1``/``0`` in
    others), each way kept as classes of its own: said, since the file's halves mean the same classes."""
    labels = [str(v).strip() for v in values.dropna().unique()] if holds_text(values) else []
    numbers = sorted(v for v in labels if re.fullmatch(_NUMBER, v))
    words = sorted(v for v in labels if not re.fullmatch(_NUMBER, v))
    if not numbers or not words or len(labels) > 20:
        return []
    return [f"target '{column}' of {path} writes its labels as numbers ({', '.join(map(repr, numbers[:5]))}) and "
            f"as words ({', '.join(map(repr, words[:5]))}): they are {len(labels)} classes; if a number and a word "
            f"mean the same class (1 and 'yes'), write them one way in the file"]


def composed(values: Any, column: str, path: Path) -> tuple[Any, list[str]]:
    """Text values in Unicode's composed form (NFC), with a note where any was not: macOS and some tools write
    'ü' as 'u' and a combining mark, which prints the same and was another class or category."""
    import unicodedata

    def nfc(value: Any) -> Any:
        return unicodedata.normalize("NFC", value) if isinstance(value, str) else value

    if not holds_text(values):
        return values, []
    out = values.map(nfc)
    changed = (out != values) & values.notna()
    if not changed.any():
        return values, []
    example = str(values[changed].iloc[0])
    return out, [f"column '{column}' of {path}: {int(changed.sum())} value(s) written in decomposed Unicode (such "
                 f"as {example!r}, {len(example)} characters) read in composed form, as the same text written "
                 f"the other way"]
