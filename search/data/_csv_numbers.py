"""How a CSV file writes its numbers, where pandas reads them otherwise: thousands grouped by dots or
spaces, decimal commas beside decimal points."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from search.data._csv_layout import Layout

_GROUPED = re.compile(r"[-+]?[1-9]\d{0,2}(?:\.\d{3})+")
_PLAIN = re.compile(r"[-+]?(?:0|[1-9]\d{0,2})")
_COMMA_GROUPED = re.compile(r"[-+]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?")
_WHOLE = re.compile(r"[-+]?\d+(?:\.\d+)?")


# A number as Excel writes it where the comma is the decimal mark: its thousands grouped by a dot or a
# space (plain, no-break or narrow no-break: French), its decimals after a comma (5.159,35; 3 800,93).
_GROUP = "[.\u00a0\u202f ]"
COMMA_DECIMAL = rf"[-+]?(?:[1-9]\d{{0,2}}(?:{_GROUP}\d{{3}})+|\d+)(?:,\d+)?"
_DOT_DECIMAL = re.compile(r"[-+]?\d*\.\d+")


def marks_of_a_comma_file(frame: Any, path: Path, notes: list[str], target: str | None = None) -> Any:
    """A file read with decimal commas: columns pandas left as text whose every value is a number with its
    thousands grouped (``5.159,35``, ``3 800,93``, ``6.159``: a dot there is no decimal mark) are read as
    numbers; a column written with decimal points instead (``5159.35``, exported apart) is read as decimals.
    Each with a note. The ``target`` is read so only where a decimal comma shows the dots are no decimal
    points (``1.000,00``): ``300.007`` alone is refused there, as the one a wrong guess would cost most."""
    import pandas as pd

    for column in frame.columns:
        if pd.api.types.is_numeric_dtype(frame[column]) or not frame[column].notna().any():
            continue
        cells = frame[column].astype("string").str.strip()
        written = cells[cells.notna() & (cells != "")]
        if not len(written):
            continue
        ambiguous = column == target and not written.str.contains(",").any()
        if written.str.fullmatch(COMMA_DECIMAL).all() and written.str.contains(_GROUP).any() and not ambiguous:
            plain = cells.str.replace(_GROUP, "", regex=True).str.replace(",", ".", regex=False)
            frame[column] = pd.to_numeric(plain.replace("", None), errors="coerce")
            example = written[written.str.contains(_GROUP)].iloc[0]
            shown = re.sub("[\u00a0\u202f]", " ", example)  # a no-break space, shown as the space it looks like
            notes.append(f"column '{column}' of {path} groups its thousands ('{shown}'): read as "
                         f"{plain[written.index[written == example][0]]}")
        elif not ambiguous and written.str.fullmatch(_DOT_DECIMAL.pattern).all() and not written.str.fullmatch(
                _GROUPED.pattern).all():
            frame[column] = pd.to_numeric(cells.replace("", None), errors="coerce")
            notes.append(f"column '{column}' of {path} writes decimal points ({written.iloc[0]!r}) where the file's "
                         f"other numbers have decimal commas: read as decimals")
    return frame


def thousands_commas(frame: Any, path: Path, notes: list[str]) -> tuple[Any, list[str]]:
    """Columns of a file not separated by commas that group thousands with commas (``3,625`` beside ``962``,
    ``1,204,331``, ``2,500.75``): read as thousands, with a note, and named so that a second reading with decimal
    commas leaves them be (it would make 3,625 three and a half). A column of such numbers only (``1,250``,
    ``2,500``) is read so where another column writes decimal points (``0.94``), the file's decimal mark;
    otherwise it stays for the decimal-comma reading."""
    import pandas as pd

    dots = any(pd.api.types.is_float_dtype(frame[c]) and bool(np.any(frame[c].dropna() % 1 != 0))
               for c in frame.columns)
    texts = {c: frame[c].astype("string").str.strip() for c in frame.columns
             if not pd.api.types.is_numeric_dtype(frame[c]) and frame[c].notna().any()}
    written_of = {c: cells[cells.notna() & (cells != "")] for c, cells in texts.items()}
    # A column of decimal commas that cannot be thousands (1,5 or 0,94): the file's decimal mark is the comma.
    commas = {c for c, w in written_of.items() if len(w) and w.str.fullmatch(COMMA_DECIMAL).all()
              and (w.str.contains(",") & ~w.str.fullmatch(_COMMA_GROUPED.pattern)).any()}
    done: list[str] = []
    for column, cells in texts.items():
        written = written_of[column]
        grouped = written.str.fullmatch(_COMMA_GROUPED.pattern)
        whole = written.str.fullmatch(_WHOLE.pattern)
        if not len(written) or not grouped.any() or not (grouped | whole).all():
            continue
        several = (written.str.count(",") > 1).any() or written.str.contains(".", regex=False).any()
        if not (several or dots or (whole.any() and not commas - {column})):
            if whole.any():  # decimals by the file's other columns, yet beside whole numbers: said
                example = written[grouped].iloc[0]
                notes.append(f"column '{column}' of {path} writes numbers such as {example!r} beside "
                             f"{written[whole].iloc[0]!r}; read with the file's decimal comma, {example} is "
                             f"{example.replace(',', '.')}: if its commas group thousands, write them without")
            continue
        frame[column] = pd.to_numeric(cells.str.replace(",", "", regex=False).replace("", None), errors="coerce")
        example = written[grouped].iloc[0]
        beside = f" beside {written[whole].iloc[0]!r}" if whole.any() else ""
        notes.append(f"column '{column}' of {path} groups its thousands with commas ({example!r}{beside}): read "
                     f"as thousands separators, so {example} is {example.replace(',', '')}")
        done.append(str(column))
    return frame, done


def thousands_dots(frame: Any, path: Path, shape: Layout, notes: list[str]) -> Any:
    """Columns of a file not separated by commas whose numbers are written with a dot every three digits
    (``2.762`` beside ``758``): read as thousands, with a note. pandas read ``2.762`` as two and three
    quarters, below ``758``; ``12.345.678`` as text. A column of dotted numbers only (``1.250``, ``2.500``)
    may be decimals of three places, and is left as read."""
    import pandas as pd

    def could_be(values: Any) -> bool:
        if pd.api.types.is_float_dtype(values):
            kept = values.dropna().to_numpy()
            thousandths = kept * 1000
            return bool(len(kept) and np.all(np.abs(thousandths - np.round(thousandths)) < 1e-6)
                        and np.any(kept != np.round(kept)) and np.any(kept == np.round(kept)))
        return not pd.api.types.is_numeric_dtype(values)

    suspects = [c for c in frame.columns if could_be(frame[c])]
    if not suspects:
        return frame
    texts = shape.texts(path)
    for column in suspects:
        if column not in texts.columns or len(texts) != len(frame):
            continue
        cells = texts[column].str.strip()
        written = cells[cells != ""]
        grouped = written.str.fullmatch(_GROUPED.pattern)
        plain = written.str.fullmatch(_PLAIN.pattern)
        multi = written.str.count(r"\.") > 1
        if not len(written) or not (grouped | plain).all() or not grouped.any():
            continue
        if not (plain.any() or multi.any()):
            continue  # 1.250 and 2.500 only: three decimal places, as read
        frame[column] = pd.to_numeric(cells.str.replace(".", "", regex=False).replace("", None), errors="coerce")
        example = written[grouped].iloc[0]
        notes.append(f"column '{column}' of {path} writes its numbers with a dot every three digits "
                     f"({example!r} beside {written[~grouped].iloc[0]!r}): read as thousands separators, so "
                     f"{example} is {example.replace('.', '')}" if plain.any() else
                     f"column '{column}' of {path} writes its numbers with a dot every three digits "
                     f"({example!r}): read as thousands separators, so {example} is {example.replace('.', '')}")
    return frame


# Characters a number picks up from a word processor or a web page: invisible ones, and dashes for minus.
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
_MINUS_SIGNS = "\u2212\u2013\ufe63\uff0d"
_NAMES = {"\u200b": "zero-width space", "\u200c": "zero-width non-joiner", "\u200d": "zero-width joiner",
          "\u2060": "word joiner", "\ufeff": "zero-width no-break space", "\u00ad": "soft hyphen",
          "\u2212": "minus sign U+2212", "\u2013": "en dash", "\ufe63": "small hyphen-minus",
          "\uff0d": "fullwidth hyphen-minus", "\u00a0": "no-break space", "\u202f": "narrow no-break space"}


def plain_text(cells: Any) -> Any:
    """Text cells without invisible characters and surrounding spaces, their dashes for minus made ``-``."""
    return (cells.str.replace(f"[{_INVISIBLE}]", "", regex=True)
            .str.replace(f"[{_MINUS_SIGNS}]", "-", regex=True).str.strip())


def typeset_numbers(frame: Any, path: Path, notes: list[str], decimal: str = ".") -> Any:
    """Text columns that are numbers but for a typographic minus (``−3.2``), an invisible character or a no-break
    space around them (copied from a document or a web page): read as numbers, with a note that names the
    characters. pandas reads them as text, and the column would be refused as free text. ``decimal``: the
    file's decimal mark (``−1,5`` in a file of decimal commas)."""
    import pandas as pd

    for column in frame.columns:
        if pd.api.types.is_numeric_dtype(frame[column]) or not frame[column].notna().any():
            continue
        cells = frame[column].astype("string")
        odd = cells.str.contains(f"[{_INVISIBLE}{_MINUS_SIGNS}\u00a0\u202f]", regex=True).fillna(False)
        if not odd.any():
            continue
        plain = plain_text(cells)
        if decimal != ".":
            plain = plain.str.replace(decimal, ".", regex=False)
        written = plain[plain.notna() & (plain != "")]
        if not len(written) or not written.str.fullmatch(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?").all():
            continue
        frame[column] = pd.to_numeric(plain.replace("", None), errors="coerce")
        first = cells[odd].index[0]
        found = sorted({_NAMES[ch] for ch in str(cells[first]) if ch in _NAMES})
        notes.append(f"column '{column}' of {path} writes its numbers with {' and '.join(found)} "
                     f"('{visible(str(cells[first]))}', {int(odd.sum())} cell(s)): read as numbers, so that one "
                     f"is {plain[first]}")
    return frame


def quoted_decimal_commas(frame: Any, path: Path, notes: list[str]) -> Any:
    """Columns of a comma-separated file whose numbers are quoted with a decimal comma (``"0,126"``, ``"12,5"``:
    a comma that cannot group thousands), as spreadsheets of a decimal-comma locale export them: read as decimals,
    with a note. Columns of thousands (``"1,095"``) were read before by :func:`thousands_commas`."""
    import pandas as pd

    for column in frame.columns:
        if pd.api.types.is_numeric_dtype(frame[column]) or not frame[column].notna().any():
            continue
        cells = frame[column].astype("string").str.strip()
        written = cells[cells.notna() & (cells != "")]
        if not len(written) or not written.str.fullmatch(COMMA_DECIMAL).all():
            continue
        decimal = written.str.contains(",") & ~written.str.fullmatch(_COMMA_GROUPED.pattern)
        if not decimal.any():
            continue
        plain = cells.str.replace(_GROUP, "", regex=True).str.replace(",", ".", regex=False)
        frame[column] = pd.to_numeric(plain.replace("", None), errors="coerce")
        example = written[decimal].iloc[0]
        notes.append(f"column '{column}' of {path} writes decimal commas inside quotes ({example!r}) in a "
                     f"comma-separated file: read as decimals, so {example} is {example.replace(',', '.')}")
    return frame


def visible(text: str) -> str:
    """``text`` with its invisible and look-alike characters written as escapes (``\\u200b``, ``\\u2212``)."""
    return "".join(ch.encode("unicode_escape").decode() if ch in _NAMES else ch for ch in text)


def without_invisible(names: list[Any], path: Path, notes: list[str]) -> list[Any]:
    """Header names without the invisible characters a copy from a document leaves in them (``price\\u200b``
    would print as ``price`` in every message, and never match the space file's ``price``)."""
    out = []
    for name in names:
        if isinstance(name, str) and any(ch in _INVISIBLE for ch in name):
            kept = "".join(ch for ch in name if ch not in _INVISIBLE)
            notes.append(f"column name '{visible(name)}' of {path} holds invisible characters: read as {kept!r}")
            name = kept
        out.append(name)
    return out
