"""CSV files as a stranger saves them: Excel's encodings and separators, decimal commas, an index column,
labels pandas would read as missing, text columns (hints, ``data.drop``, ``data.categorical``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from search.data import _checks, _column_notes, _csv_layout, _csv_numbers, _csv_target, _csv_text, _total_rows
from search.data._raw import Raw
from search.errors import DataError


def read_frame(path: Path, where: str, field: str, named: list[str | None],
               target: str | None) -> tuple[Any, Any, list[str], Any]:
    """A CSV file's table as the training reader reads it (encoding, separator, Excel's lines, decimal commas,
    thousands separators, unnamed columns), its columns by name: (frame, layout, notes, zero-padded codes).
    ``named``: the columns the space names, ``target``'s kept as written. Also what `search predict` reads."""
    import pandas as pd

    shape = _csv_layout.layout(path, where, field)
    _csv_layout.separator_naming(shape, path, named)
    sep = shape.sep
    try:
        frame = shape.read(path)
        if not frame.index.equals(pd.RangeIndex(len(frame))):  # pandas took first fields as the rows' index
            _csv_layout.one_field_too_many(path, shape, where, field, frame.index)
            frame = shape.read(path) if shape.trailing else frame
        if len(frame) and frame.isna().all(axis=1).any() and shape.skip_empty_lines(path):
            frame = shape.read(path)  # rows of empty cells had made every column floats with gaps
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        said = (_csv_layout.field_count_trouble(str(exc), path, shape)
                or _csv_layout.open_quote_trouble(str(exc), path, shape))
        raise DataError(f"cannot parse CSV file {path}: {said}" if said else
                        f"cannot parse CSV file {path} ({str(exc).strip()})", source=where, field=field) from None
    notes: list[str] = list(shape.notes)
    if len(frame) and len(frame.columns) > 1 and frame.iloc[:, -1].isna().any():  # a short line's last cell is
        shape.short = shape.short_lines(path, len(frame.columns))
        if shape.short:
            line, fields, _ = next(iter(shape.short.values()))
            notes.append(f"{len(shape.short)} data line(s) of {path} hold fewer fields than its header (line "
                         f"{line}: {fields} of {len(frame.columns)} fields): the cells they lack are read as missing")
    leading_zeros = _column_notes.zero_padded(frame, path, shape)  # read before columns are renamed or dropped
    frame.columns = _csv_numbers.without_invisible(list(frame.columns), path, notes)
    if sep == ",":
        # "1,095" quoted, as Excel and US exports write a number of thousands in a comma-separated file.
        frame, _ = _csv_numbers.thousands_commas(_csv_numbers.typeset_numbers(frame, path, notes), path, notes)
        frame = _csv_numbers.quoted_decimal_commas(frame, path, notes)
    else:
        frame = _csv_numbers.thousands_dots(_with_decimal_commas(frame, path, shape, notes, target), path,
                                           shape, notes)
    # `a, b, label`: the names are a, b and label (pandas would keep the spaces: ' b', ' label').
    frame.columns = [c.strip() if isinstance(c, str) else c for c in frame.columns]
    return _without_unnamed(frame, path, notes), shape, notes, leading_zeros


def read_csv(path: Path, section: Any, where: str, split_column: str | None = None,
             field: str = "data.source") -> Raw:
    import pandas as pd

    frame, shape, notes, leading_zeros = read_frame(
        path, where, field, [section.target, section.group, section.order, split_column], section.target)
    frame = _csv_layout.as_named(frame, [section.target, section.group, section.order, split_column,
                              *(getattr(section, "drop", None) or [])])
    if section.target is None:
        raise DataError("a CSV source needs the name of its target column", source=where,
                        field="data.target", expected="one of " + ", ".join(map(str, frame.columns)))
    if len(frame) == 0:
        raise DataError(f"the CSV file {path} has a header but no data rows", source=where, field=field,
                        expected="at least one row below the header")
    named = {"data.target": section.target, "data.group": section.group, "data.order": section.order,
             "data.split_column": split_column}
    for role, column in named.items():
        if column is not None and column not in frame.columns:
            header = ",".join(map(str, frame.columns))
            other = next((name for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars"))
                          if len(frame.columns) == 1 and sep in header), None)
            hint = f" (its header is one column holding {other}: the file must be comma-separated)" if other else ""
            if not other and all(_is_number(name) for name in frame.columns):
                hint = " (its first line holds numbers: the file needs a header line of column names)"
            elif not other and str(frame.columns[0]).startswith("#"):
                hint = " (its first line is a comment: the first line must be the column names)"
            elif not other and (near := _near_name(str(column), [str(c) for c in frame.columns])):
                hint = f" (did you mean '{near}'?)"
            raise DataError(f"no such column in {path}{hint}", source=where, field=role,
                            expected="one of " + ", ".join(map(str, frame.columns)), found=column)
    roles = [(role, column) for role, column in named.items() if column is not None]
    for i, (role, column) in enumerate(roles):
        for other, same in roles[i + 1:]:
            if same == column:
                raise DataError(f"column '{column}' of {path} is named as {role} and as {other}; one column has "
                                "one role", source=where, field=other, expected=f"a column other than '{column}'",
                                found=column)
    _csv_layout.no_rows_in_one_cell(frame, path, shape.sep, where, field)
    special = [c for c in named.values() if c is not None]
    if section.group is None and section.order is None:  # read before data.drop takes the column out
        grouped_rows = _column_notes.repeated_ids(frame, path, special) + _column_notes.time_ordered(frame, path,
                                                                                                      special)
    else:
        grouped_rows = []
    if getattr(section, "drop", None):
        notes.append(f"column(s) {', '.join(map(repr, section.drop))} of {path} left out (data.drop)")
    features = frame.drop(columns=special + _dropped(section, frame, path, where, named))
    if features.shape[1] == 0:
        raise DataError(f"{path} has no feature columns besides target/group/order", source=where,
                        field=field)
    _no_header_rows(frame, path, where, field)
    if getattr(section, "missing", "refuse") != "refuse":
        features = _csv_text.blank_cells_as_missing(features, path, notes)
    texts = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])
             and not pd.api.types.is_bool_dtype(features[c])]
    categories: dict[str, np.ndarray] = {}
    one_hot = [c for c in texts if _csv_text.is_category(features[c])] \
        if getattr(section, "categorical", "refuse") == "one_hot" else []
    spelled = _AsSpelled(path, shape, [section.target, *one_hot])
    spellings: list[str] = []
    for c in one_hot:
        raw_text = spelled(c)  # NA or None are values of a category, not missing ones
        values = raw_text if raw_text is not None and len(raw_text) == len(features) else features[c]
        as_read, decomposed = _csv_target.composed(values.fillna("").astype(str), str(c), path)
        notes += decomposed
        categories[str(c)] = as_read.str.strip().to_numpy()
        if (padded := int((as_read.to_numpy() != categories[str(c)]).sum())):
            example = as_read[as_read.to_numpy() != categories[str(c)]].iloc[0]
            notes.append(f"column '{c}' of {path}: {padded} value(s) with surrounding spaces (such as {example!r}) "
                         f"taken without them")
        said = _checks.label_spellings(categories[str(c)], str(path), f"values of column '{c}'")
        spellings.extend([said] if said else [])
    texts = [c for c in texts if c not in one_hot]
    features = features.drop(columns=one_hot)
    for c in [c for c in texts if _true_false_with_gaps(features[c])]:
        # pandas reads TRUE/FALSE as truth values only where no cell is empty; with gaps, as text of True and False.
        features[c] = features[c].map(lambda v: float(v) if isinstance(v, (bool, np.bool_)) else np.nan)
        texts.remove(c)
        notes.append(f"column '{c}' of {path} holds TRUE and FALSE with {int(features[c].isna().sum())} empty "
                     f"cell(s): read as 1 and 0 with missing values")
    if texts:
        column = texts[0]
        sample, row = _first_non_number(features[column])
        if len(texts) == 1:
            hint = _csv_text.text_column_hint(features[column], column)
            message = f"column '{column}' of {path} is not numeric; {hint}"
        else:  # all of them at once: one edit of the file, not one run per column
            message = (f"{len(texts)} columns of {path} are not numeric: "
                       + "; ".join(f"'{c}': {_csv_text.text_column_hint(features[c], c)}" for c in texts))
        where_found = f" (first at row {row} of '{column}', counting from 0)" if row is not None else ""
        # What the next check would stop on, said now: a stranger fixed the text columns, then met the gaps.
        holes = {str(c): int(features[c].isna().sum()) for c in features.columns if c not in texts
                 and features[c].isna().any()} if getattr(section, "missing", "refuse") == "refuse" else {}
        also = ("; the file also has empty cells in " + ", ".join(f"'{c}' ({n})" for c, n in list(holes.items())[:5])
                + (", ..." if len(holes) > 5 else "") + ": set data.missing: median (or mean) to fill them per split"
                ) if holes else ""
        raise DataError(message + where_found + also, source=where, field=field, expected="numbers", found=sample)
    notes += _column_notes.row_counters(features, path) + _column_notes.constant_columns(features, path)
    notes += _column_notes.code_columns(features, path, notes)
    notes += _column_notes.padded_codes(features, leading_zeros, path, notes)
    warnings = spellings + grouped_rows + _column_notes.missing_codes(features, path) + _checks.float32_merges(
        [(str(c), features[c].to_numpy()) for c in features.columns if not pd.api.types.is_bool_dtype(features[c])],
        str(path))
    _csv_target.number_target_as_text(frame[section.target], section.target, section.task, path, where)
    target_text = _as_written(spelled, section.target, frame[section.target])
    kept_words = ""
    if target_text is not None:
        unread = frame[section.target].isna() & target_text.notna()
        words = ", ".join(map(repr, sorted(set(target_text[unread]))))
        kept_words = f"; the cells {words} ({int(unread.sum())}) are read as a class of their own, not as missing"
        frame[section.target] = target_text
        # NA is North America, None a class, or R's missing label: the rows say which only to a person.
        warnings.append(f"target '{section.target}' of {path}: the label(s) {words} ({int(unread.sum())} rows: "
                      f"{_rows(unread)}) are kept as classes of their own; pandas and R write them for a missing "
                      f"label, so if these rows have no label, delete them from the file")
    frame[section.target], decomposed = _csv_target.composed(frame[section.target], section.target, path)
    notes += decomposed + _merged_spellings(spelled, section.target, frame[section.target])
    warnings += _csv_target.mixed_codings(frame[section.target], section.target, path)
    if _csv_target.holds_text(frame[section.target]):  # a cell of spaces is no label: refused as an empty one
        frame[section.target] = frame[section.target].mask(frame[section.target].astype(str).str.strip() == "")
    fills = getattr(section, "missing", "refuse") != "refuse"  # feature cells each split fills (data.missing)
    gaps = [c for c in [*([] if fills else features.columns),
                        *(c for c in (section.target, section.group, section.order) if c)] if frame[c].isna().any()]
    if gaps:
        column = gaps[0]
        missing = int(frame[column].isna().sum())
        hint = ("; or set data.missing: median (or mean) to fill them per split from its training rows"
                if column in features.columns else "; data.missing fills feature columns only" if fills else "")
        if column in features.columns and frame[column].isna().all():
            hint = f"; it has no value in any row, so leave it out (data.drop: [{column}])"
        if column == section.target:
            hint += kept_words  # said with the empty cells: the file's other gaps are then not read as missing
        written = _missing_as_written(spelled, column, frame[column], shape.short)
        also = ("; other columns with missing values: " + ", ".join(f"'{c}' ({int(frame[c].isna().sum())})"
                                                                     for c in gaps[1:6])
                + (", ..." if len(gaps) > 6 else "")) if len(gaps) > 1 else ""
        raise DataError(f"column '{column}' of {path} has {missing} missing value(s){written} in "
                        f"{_rows(frame[column].isna())}; fill or drop them first{hint}{also}", source=where,
                        field={section.target: "data.target", section.group: "data.group",
                               section.order: "data.order"}.get(column, field) if field == "data.source" else field)
    if split_column is not None:
        missing = int(frame[split_column].isna().sum())
        if missing:
            raise DataError(f"split column '{split_column}' of {path} has {missing} empty value(s)", source=where,
                            field="data.split_column", expected="test/train, 1/0 or true/false in every row")
    _total_rows.refuse_total_row({**{str(c): features[c].to_numpy() for c in features.columns},
                                  str(section.target): frame[section.target].to_numpy()}, path, where, field)
    return Raw(features.to_numpy(dtype=np.float64), frame[section.target].to_numpy(),
               groups=frame[section.group].to_numpy() if section.group else None,
               order=frame[section.order].to_numpy() if section.order else None,
               feature_names=[str(c) for c in features.columns],
               test_mask=_checks.split_marks(frame[split_column].to_numpy(), split_column, path, where)
               if split_column is not None else None, label=str(path), notes=notes, warnings=warnings,
               categories=categories)


def _with_decimal_commas(frame: Any, path: Path, shape: _csv_layout.Layout, notes: list[str],
                         target: str | None = None) -> Any:
    """A CSV separated by semicolons (Excel where the comma is the decimal mark), tabs or bars: said in a
    note, and read again with the decimal comma where a column holds numbers written ``1,5``."""
    import pandas as pd

    words = ""
    frame, thousands = _csv_numbers.thousands_commas(frame, path, notes)
    texts = [_csv_numbers.plain_text(frame[c].dropna().astype(str)) for c in frame.columns
             if not pd.api.types.is_numeric_dtype(frame[c]) and frame[c].notna().any()]
    if any(v.str.fullmatch(_csv_numbers.COMMA_DECIMAL).all() and v.str.contains(",").any() for v in texts):
        try:
            again = shape.read(path, decimal=",")
            words = ", with decimal commas (1,5 is one and a half)"
        except (pd.errors.ParserError, ValueError):
            pass  # as first read: its columns' errors say what is wrong
        else:
            for column in thousands:  # read as thousands above, which a decimal comma would undo
                again[column] = frame[column]
            frame = _csv_numbers.marks_of_a_comma_file(again, path, notes, target)
    frame = _csv_numbers.typeset_numbers(frame, path, notes, decimal="," if words else ".")
    if not shape.skip:  # else the sep= line's note says it
        notes.append(f"{path} is separated by {_csv_layout.SEPARATORS[shape.sep]}, not commas{words}: read that way")
    elif words:
        notes.append(f"{path}: read {words.removeprefix(', ')}")
    return frame


def _dropped(section: Any, frame: Any, path: Path, where: str, named: dict[str, Any]) -> list[str]:
    """The columns ``data.drop`` names, each checked to exist and to have no other role."""
    drop = list(getattr(section, "drop", None) or [])
    absent = [column for column in drop if column not in frame.columns]
    if absent:
        # Every name at once, each with the column it was likely meant as: a name in another case ('customerid'
        # for 'CustomerID') was refused without a hint, and only the first of several.
        columns = [str(c) for c in frame.columns]
        def hint(name: str) -> str:
            parts = [p.strip() for p in str(name).split(",")]
            if len(parts) > 1 and all(p in columns for p in parts):  # one YAML string where a list was meant
                return f" (one name with commas: a list is written [{', '.join(parts)}])"
            near = _near_name(str(name), columns)
            return f" (did you mean '{near}'?)" if near else ""

        hints = [f"'{name}'{hint(name)}" for name in absent]
        raise DataError(f"data.drop names {len(absent)} column(s) that {path} does not have: {', '.join(hints)}",
                        source=where, field="data.drop", expected="one of " + ", ".join(columns),
                        found=absent[0] if len(absent) == 1 else absent)
    for column in drop:
        role = next((r for r, c in named.items() if c == column), None)
        if role is not None:
            raise DataError(f"column '{column}' of {path} is {role}, so it cannot also be dropped", source=where,
                            field="data.drop", expected=f"a column other than {role}", found=column)
    return drop


def _no_header_rows(frame: Any, path: Path, where: str, field: str) -> None:
    """A data row that repeats the header (files joined with ``cat``) would make every column text."""
    import pandas as pd

    names = [str(c) for c in frame.columns]
    if len(frame) == 0 or all(pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns):
        return
    same = (frame.astype(str).apply(lambda col: col.str.strip()) == names).all(axis=1).to_numpy()
    if same.any():
        rows = np.flatnonzero(same)
        lines = ", ".join(str(int(r) + 2) for r in rows[:5]) + (" ..." if len(rows) > 5 else "")
        raise DataError(f"{path} repeats its header line as a data row ({len(rows)} time(s), at line(s) {lines}), "
                        f"as files joined end to end do; delete those lines", source=where, field=field,
                        expected="one header line", found=",".join(names))


def _near_name(name: str, columns: list[str]) -> str | None:
    """The column a name was most likely meant as: the same but for case, or a close spelling."""
    import difflib

    same = [c for c in columns if c.casefold() == name.casefold()]
    close = difflib.get_close_matches(name.casefold(), [c.casefold() for c in columns], n=1, cutoff=0.8)
    return same[0] if same else next((c for c in columns if close and c.casefold() == close[0]), None)


def _true_false_with_gaps(values: Any) -> bool:
    kept = values.dropna()
    return bool(len(kept)) and len(kept) < len(values) and all(isinstance(v, (bool, np.bool_)) for v in kept)


def _is_number(name: Any) -> bool:
    try:
        float(str(name))
    except ValueError:
        return False
    return True


class _AsSpelled:
    """Columns as the file spells them (pandas reads NA, N/A, null, None, NaN and empty cells as missing). The
    columns named up front are read together in one pass over the file, the first time one is asked for."""

    def __init__(self, path: Path, shape: _csv_layout.Layout, columns: list[Any]) -> None:
        self.path, self.shape = path, shape
        self.wanted = {str(c) for c in columns if c is not None}
        self.read: dict[str, Any] = {}

    def __call__(self, column: Any) -> Any:
        column = str(column)
        if column not in self.read:
            self.read.update(self._load({column} | (self.wanted - set(self.read))))
        return self.read[column]

    def _load(self, names: set[str]) -> dict[str, Any]:
        try:
            text = self.shape.read(self.path, usecols=lambda name: str(name).strip() in names, dtype=str,
                                   keep_default_na=False)
            found = {str(c).strip(): text[c] for c in text.columns}
        except Exception:  # a header pandas reads differently this way: no finer message, the checks still stand
            return dict.fromkeys(names)
        return {name: found.get(name) for name in names}


def _as_written(spelled: _AsSpelled, column: str, values: Any) -> Any:
    """A text target whose "missing" cells all hold words (``NA`` for North America, ``None`` as a class)."""
    import pandas as pd

    present = values.dropna()
    if not values.isna().any() or (len(present) and pd.api.types.is_numeric_dtype(present.infer_objects())):
        return None  # nothing missing, or a numeric target, where NA does mean a missing value
    text = spelled(column)
    if text is None or len(text) != len(values):
        return None
    words = values.isna() & (text.str.strip() != "")  # a truly empty cell stays missing, and is refused as such
    return text.str.strip().where(words, values) if words.any() else None


def _merged_spellings(spelled: _AsSpelled, column: str, values: Any, most: int = 50) -> list[str]:
    """A note where a numeric target's labels are written several ways (``01`` and ``1``, ``2.0`` and ``2``):
    read as numbers they are one class, which codes such as ZIP or product codes are not."""
    import pandas as pd

    path = spelled.path
    if not pd.api.types.is_numeric_dtype(values) or values.nunique() > most or path.stat().st_size > 100 * 2**20:
        return []
    text = spelled(column)
    if text is None or len(text) != len(values):
        return []
    spellings = pd.DataFrame({"value": values.to_numpy(), "text": text.str.strip().to_numpy()}).dropna()
    ways = spellings.groupby("value")["text"].unique()
    merged = [sorted(w) for w in ways if len(w) > 1]
    if not merged:
        return []
    shown = "; ".join(" and ".join(repr(t) for t in w[:3]) for w in merged[:3])
    more = "; ..." if len(merged) > 3 else ""
    if pd.api.types.is_bool_dtype(values):  # TRUE, True and true: one truth value, and nothing to recode
        return [f"target '{column}' of {path}: labels written differently are read as the same true/false "
                f"value, so as one class ({shown}{more})"]
    return [f"target '{column}' of {path}: {MERGED_NUMBERS} ({shown}{more}); if they are codes that differ, write "
            f"them with a letter (c01, c1)"]


# That note's words: a note for a class target, dropped where the target turns out to be a regression one.
MERGED_NUMBERS = "labels written differently are read as the same number, so as one class"


def _missing_as_written(spelled: _AsSpelled, column: Any, values: Any,
                        short: dict[int, tuple[int, int, int]] | None = None) -> str:
    from collections import Counter

    missing = [int(r) for r in np.flatnonzero(values.isna().to_numpy())]
    cut = [r for r in missing if r in (short or {})]
    if cut:  # not empty cells: no cell at all, the line ends first
        line, fields, header = (short or {})[cut[0]]
        return (f" (as written: none, {len(cut)} of them on line(s) with fewer fields than the header, such as "
                f"line {line}, {fields} fields where the header has {header}: a line cut short, or a separator "
                f"missing)")
    text = spelled(column)
    if text is None or len(text) != len(values):
        return ""
    counts = Counter(text[values.isna()].str.strip())
    shown = ", ".join(f"{'empty cells' if t == '' else repr(t)} ({n})" for t, n in counts.most_common(4))
    return f" (as written: {shown})"


def _without_unnamed(frame: Any, path: Path, notes: list[str]) -> Any:
    """Drop the columns a CSV writer left without a header: a row index, or the empty one of a trailing comma.

    ``DataFrame.to_csv`` writes the index first with an empty name (pandas reads it back as ``Unnamed: 0``).
    As a feature it is the row number: after a sort by class or by time, a give-away of the target.
    """
    import pandas as pd

    for position, column in enumerate(list(frame.columns)):
        if not (isinstance(column, str) and (column.startswith("Unnamed: ") or column == "")):
            continue  # pandas names an empty header cell "Unnamed: <n>"; a blank one is "" once stripped
        values = frame[column]
        if values.isna().all():
            notes.append(f"column {position + 1} of {path} has neither a name nor values (a trailing comma?): "
                         "ignored")
        elif pd.api.types.is_integer_dtype(values) and (values.is_unique or position == 0):
            # Saved by to_csv twice (read back, shuffled, saved again), a frame has two: '' and 'Unnamed: 0'.
            which = "the first column" if position == 0 else f"column {position + 1} ('{column}')"
            how = ("unique whole numbers" if values.is_unique else
                   "whole numbers, some repeated (the index of frames joined with pandas.concat)")
            notes.append(f"{which} of {path} has no name of its own and holds {how}: a row index "
                         "(as DataFrame.to_csv writes it), not used as a feature")
        else:
            continue
        frame = frame.drop(columns=[column])
    return frame


def _rows(mask: Any, most: int = 5) -> str:
    """Where a mask of the frame's rows is true, as data rows counted from 0 (the header is not a row)."""
    rows = [int(r) for r in np.flatnonzero(np.asarray(mask))]
    shown = ", ".join(map(str, rows[:most])) + (", ..." if len(rows) > most else "")
    return f"row{'s' if len(rows) > 1 else ''} {shown}, counting from 0"


def _first_non_number(values: Any) -> tuple[Any, int | None]:
    """The first cell of a text column that does not read as a number, and its row: what to look for."""
    import pandas as pd

    text = values.dropna().astype(str)
    bad = pd.to_numeric(text.str.strip(), errors="coerce").isna()
    if not bad.any():
        return (text.iloc[0] if len(text) else None), None
    return text[bad].iloc[0], int(text[bad].index[0])
