"""Loading a data set once per study, detecting its task, and holding out the test rows.

The held-out test rows are chosen here, from the study seed, and no trial ever receives them: the
search only ever sees the *development* rows (``dev_idx``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from search.data import _checks, _times
from search.data._image_pixels import preparation as image_preparation
from search.data._sources import SKLEARN_SETS, Raw, read
from search.data._task import MAX_CLASSES_DETECTED as MAX_CLASSES_DETECTED
from search.data._task import code as _code, code_test as _code_test, kind as _kind, notes_on_the_task
from search.data._leaks import of_dataset as giveaways
from search.data._near_copies import warning as near_copies
from search.data._test_rows import development_vocabulary as development_vocabulary
from search.data._test_rows import rare_class_hint as rare_class_hint, spelled_like as spelled_like, \
    split_test as split_test
from search.errors import DataError

__all__ = ["Dataset", "SKLEARN_SETS", "development_vocabulary", "fingerprint_indices", "giveaways", "near_copies",
           "image_preparation", "load", "rare_class_hint", "read_rows", "spelled_like", "split_test"]



# Stored with a study whose one-hot columns pass the scaler unchanged (every study made since they do).
ONE_HOT_AS_IS = "one_hot_as_is"


@dataclass
class Dataset:
    X: np.ndarray              # float32 features, rows in time order when an order column is given
    y: np.ndarray              # int32 class codes, or float32 targets for regression
    task: str                  # "binary" | "multiclass" | "regression"
    classes: list[Any] = field(default_factory=list)
    groups: np.ndarray | None = None
    has_order: bool = False
    # With data.order: per row, the rank of its time among the development source's distinct times (equal
    # times, equal rank; rows sorted by it). Cuts in time fall between ranks, never inside a tie.
    periods: np.ndarray | None = None
    times: list[str] = field(default_factory=list)  # each rank's time as text, for the plan of the splits
    test_times: list[str] = field(default_factory=list)  # data.test's first and last time as text (one rank above)
    # Each row's place in the file it came from (data.source's, or data.test's where test_mask says so): a
    # CSV's or an array's row counting from 0, an image's file relative to its folder.
    rows: np.ndarray | None = None
    feature_names: list[str] | None = None
    duplicates_dropped: int = 0
    duplicates_kept: bool = False  # data.duplicates: keep, or auto on coarse features (no copy dropped)
    fingerprint: str = ""
    source: str = ""
    images_skipped: list[str] = field(default_factory=list)  # unreadable files left out (skip_bad_images)
    rows_read: int = 0                                       # before any cleaning, test rows included
    test_rows_read: int = 0                                  # of them, read from data.test's file
    dropped: dict[str, int] = field(default_factory=dict)    # rows left out, by reason
    warnings: list[str] = field(default_factory=list)        # things that may be meant, printed at start
    notes: list[str] = field(default_factory=list)           # how the data was read
    test_mask: np.ndarray | None = None                      # the provided test rows (data.test/split_column)
    test_source: str = ""                                    # where they came from, for the summary
    # data.source / data.test given by a relative path: the file each was found as (from the working
    # folder or the space file's), so an export names the file the study read, wherever it is written.
    files: dict[str, str] = field(default_factory=dict)
    # data.categorical: one_hot: each category column and its values, encoded as the features column=value.
    one_hot: dict[str, list[str]] = field(default_factory=dict)
    # A study made before one-hot columns passed the scaler as their 0 and 1: its checkpoints took them scaled,
    # and its scalers keep doing so (follow_study), so its trials, split models and --verify stay as they were.
    one_hot_scaled: bool = False

    @property
    def as_is_columns(self) -> list[int]:
        """The one-hot features a scaler leaves as their 0 and 1 (none for a study made before it did)."""
        return [] if self.one_hot_scaled else self.one_hot_columns

    def follow_study(self, stored: dict[str, Any]) -> None:
        """Take the scaling of one-hot columns the study (its ``user_attrs``) was made with."""
        self.one_hot_scaled = bool(self.one_hot) and ONE_HOT_AS_IS not in stored

    @property
    def one_hot_columns(self) -> list[int]:
        """The features ``data.categorical: one_hot`` made, by position (a scaler zeroes those no split sets)."""
        if not self.one_hot or self.feature_names is None:
            return []
        made = {f"{name}={value if value else '(empty)'}" for name, values in self.one_hot.items() for value in values}
        return [i for i, feature in enumerate(self.feature_names) if feature in made]

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.task == "multiclass" else 1

    @property
    def is_classification(self) -> bool:
        return self.task != "regression"

    @property
    def labels(self) -> list[Any]:
        """The class labels as plain Python values (``0``, ``'yes'``, ``2.5``), in the order of the outputs."""
        return [c.item() if hasattr(c, "item") else c for c in self.classes]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.X.shape[1:])

    def summary(self) -> dict[str, Any]:
        return {"source": self.source, "rows": int(len(self.X)), "features": int(np.prod(self.input_shape)),
                "task": self.task, "classes": len(self.classes), "duplicates_dropped": self.duplicates_dropped,
                "fingerprint": self.fingerprint, "input_shape": list(self.input_shape),
                "images_skipped": len(self.images_skipped)}


def read_rows(path: Path, columns: list[str], target: str | None = None) -> tuple[Any, list[str]]:
    """A CSV file of rows for a final model, read as its training file was read (encoding, separator, Excel's
    lines, decimal commas, thousands separators): (frame, notes). ``columns``: the model's, ``target`` the
    training target's name (kept as written where the file holds it). Refused as the training file would be."""
    from search.data import _csv, _csv_layout

    where = str(path)
    if not Path(path).is_file():
        raise DataError("the file of rows does not exist", source=where, field="INPUT",
                        expected="a CSV file with a header row, the columns of the training file")
    frame, _, notes, _ = _csv.read_frame(Path(path), where, "INPUT", [*columns, target], target)
    frame = _csv_layout.as_named(frame, [*columns, target])
    if len(frame) == 0:
        raise DataError(f"the CSV file {path} has a header but no data rows", source=where, field="INPUT",
                        expected="at least one row below the header")
    # A spreadsheet's Total row is refused here as in training: predicted, it was scored with the rows it sums.
    from search.data import _total_rows

    _total_rows.refuse_total_row({str(c): frame[c].to_numpy() for c in [*columns, target] if c in frame.columns},
                                 Path(path), where, "INPUT")
    return frame, notes


def load(section: Any, space_path: Path | None = None) -> Dataset:
    """Read ``data.source`` (and the provided test rows), check and clean them, and return a typed
    :class:`Dataset` with its fingerprint. Every refusal happens here, before anything is stored."""
    where = str(space_path) if space_path else "<space>"
    bases = [Path.cwd()] + ([space_path.parent] if space_path else [])
    raw = read(section.source, section, bases, where, "data.source", section.split_column)
    if raw.rows is None:
        raw.rows = np.arange(len(raw.X))
    vocabulary = {name: sorted(set(values.tolist())) for name, values in raw.categories.items()}
    _encode_categories(raw, vocabulary, where)
    label = raw.label or section.source
    if raw.label and not Path(section.source.partition(":")[2]).expanduser().is_absolute():
        # Found from the working folder or the space file's: the same command in another folder may read
        # another file, so the summary says which one this was.
        kind = "folder" if Path(raw.label).is_dir() else "file"
        raw.notes.insert(0, f"data.source {section.source} is the {kind} {raw.label}")
    test: Raw | None = None
    source_kind = section.source.partition(":")[0]
    if section.test is not None and section.test.partition(":")[0] in ("csv", "npz", "images") and \
            section.test.partition(":")[0] != source_kind:
        # Pixels are scaled by how they are stored (image files, uint8 arrays): a test set of another kind
        # would reach the model on another scale, and a CSV's columns are matched by name, an array's by place.
        raise DataError(f"data.test is a {section.test.partition(':')[0]}: source, data.source a "
                        f"{source_kind}: one; the test rows must be the same kind of data", source=where,
                        field="data.test", found=section.test,
                        expected="sklearn:<name>" if source_kind == "sklearn" else f"{source_kind}:<path>")
    if section.test is not None:
        test = read(section.test, section, bases, where, "data.test")
        if test.rows is None:
            test.rows = np.arange(len(test.X))
        _encode_categories(test, vocabulary, where)
        test_label = test.label or section.test
        _conform(test, raw, test_label, label, where)
    elif raw.test_mask is not None:
        raw, test = _divide(raw, raw.test_mask, label, section.split_column, where)
        test_label = f"the test rows of {label}"
    files = {key: str(Path(part.label).resolve()) for key, part, given in
             (("source", raw, section.source), ("test", test, section.test)) if part is not None and part.label
             and given and not Path(given.partition(":")[2]).expanduser().is_absolute()}
    parts = [(raw, label)] + ([(test, test_label)] if test is not None else [])
    for part, what in parts:
        field = "data.test" if part is test and section.test is not None else "data.source"
        if len(part.X) == 0:
            raise DataError(f"{what} has no rows", source=where, field=field)
        _checks.features_finite(part.X, part.feature_names, what, where, section.missing, part.notes, field)
        if part.order is not None:  # stable, so rows with equal timestamps keep file order
            part.order = _times.time_order(part.order, section.order or "order", what, where, part.notes)
            part.warnings += _times.far_times(part.order, section.order or "order", what)
            _take(part, np.argsort(part.order, kind="stable"))
    rows_read = sum(len(p.X) + len(p.skipped) for p, _ in parts)
    every_label = np.concatenate([p.y for p, _ in parts])
    both = label if test is None else f"{label} and {test_label}"
    warnings = [w for w in [_checks.label_spellings(every_label, both), _checks.joined_labels(every_label, both)] if w]
    if raw.groups is not None:
        group_ids = np.concatenate([p.groups for p, _ in parts if p.groups is not None])
        warnings += [w for w in [_checks.label_spellings(group_ids, label if test is None else f"{label} and "
                                                         f"{test_label}", f"group ids ({section.group or 'groups'})")]
                     if w]
    warnings += [w for part, _ in parts for w in part.warnings]
    if test is not None and raw.order is not None and test.order is not None:
        warnings += _times.test_not_later(raw, test, section.order or "order", label, test_label, where)
    kind = _kind(raw.y, section.task, raw.declared_task, where)
    if kind == "regression":  # a number's spellings (-0.0 and 0.0) are one value, as a value, not a class
        from search.data._csv import MERGED_NUMBERS

        raw.notes = [n for n in raw.notes if MERGED_NUMBERS not in n]
    said, noted = notes_on_the_task(raw.y, kind, section.target or "y",
                                    detected=section.task == "auto" and raw.declared_task is None)
    warnings += said
    raw.notes += noted
    duplicates = section.duplicates
    if duplicates == "auto":
        # drop keeps time-ordered copies at other times already (data.order), and images' copies are files.
        coarse = None if kind == "regression" or section.is_images or raw.order is not None else \
            _checks.coarse(raw.X, raw.y, label)
        duplicates = "drop" if coarse is None else "keep"
        if coarse is not None:
            raw.notes.append(coarse)
    dropped: dict[str, int] = {}
    if raw.skipped or (test is not None and test.skipped):
        dropped["unreadable images"] = sum(len(p.skipped) for p, _ in parts)
    for part, what in parts:
        if kind == "regression":
            part.y = _checks.target_finite(part.y, section.target or "y", what, where)
        elif part.y.dtype.kind == "f" and not np.isfinite(part.y).all():
            raise DataError(f"the target of {what} has NaN or infinite values", source=where, field="data.target")
        before = part.y
        keep, part.y, removed, warned = _checks.duplicates(part.X, part.y, duplicates,
                                                           kind == "regression", what, where, order=part.order,
                                                           names=part.rows)
        if part is test and duplicates == "drop":
            # Test rows given by the user are the test set as given: copies among them leak nothing (none is
            # trained on), and dropping them moved the test loss away from the user's own count of it.
            if removed:
                part.notes.append(f"{what}: {sum(removed.values())} row(s) repeat another test row "
                                  f"({', '.join(removed)}); kept as given, so the test score counts each")
            part.y, removed, warned = before, {}, []
            keep = np.arange(len(part.X))
        _take(part, keep, y=False)
        if part is raw and kind != "regression":
            _checks.vanished_classes(before, part.y, "de-duplication", what, where, part.warnings,
                                     images=section.is_images)
        prefix = "test rows: " if part is test else ""
        dropped.update({prefix + k: v for k, v in removed.items()})
        warnings += warned
    if test is not None and len(test.X) == 0:
        raise DataError(f"{test_label} has no rows left after de-duplication ({', '.join(dropped)})",
                        source=where, field="data.duplicates")
    if test is not None:
        _keep_test_out(raw, test, duplicates, kind, label, test_label, dropped, warnings, where,
                       images=section.is_images)
    y_dev, classes, task = _code(raw.y, kind, where, f"the target '{section.target or 'y'}' of {label}")
    y_test = _code_test(test.y, classes, kind, test_label, label, where) if test is not None else None
    X = np.concatenate([p.X for p, _ in parts]).astype(np.float32)
    y = y_dev if y_test is None else np.concatenate([y_dev, y_test])
    groups = None if raw.groups is None else np.concatenate([p.groups for p, _ in parts])
    rows = np.concatenate([p.rows for p, _ in parts]) if all(p.rows is not None for p, _ in parts) else None
    mask = None if test is None else np.arange(len(X)) >= len(raw.X)
    shared: set[Any] = set()
    if groups is not None and mask is not None:
        shared = set(groups[~mask].tolist()) & set(groups[mask].tolist())
    if shared:
        warnings.append(f"{len(shared)} group(s) of data.group have rows in both the development and the test rows "
                        f"(e.g. {sorted(shared, key=str)[:3]}); the test score may be optimistic")
    digest = hashlib.sha256()
    hashed = [X, y, groups if groups is not None else np.zeros(0)] + ([mask] if mask is not None else [])
    for array in hashed:
        digest.update(str(array.shape).encode() + str(array.dtype).encode())
        digest.update(np.ascontiguousarray(array).tobytes() if array.dtype != object else repr(array.tolist()).encode())
    skipped = [str(f) for p, _ in parts for f in p.skipped]
    periods, times, test_times = None, [], []
    if raw.order is not None:
        distinct, ranks = np.unique(raw.order, return_inverse=True)
        ranks, times = ranks.ravel(), _times.time_labels(distinct)
        if test is not None and test.order is not None and len(test.order):
            test_times = _times.time_labels(np.unique(test.order)[[0, -1]])
        raw.notes.extend(_times.absent_days(distinct, section.order or "order"))
        periods = ranks if test is None else np.concatenate([ranks, np.full(len(test.X), ranks.max() + 1)])
    if X.ndim == 2 and 2 * X.shape[1] >= len(raw.X) >= 2:
        # A table about as wide as a split's training rows are many is fitted exactly by any network.
        raw.notes.append(f"{X.shape[1]} features for {len(raw.X)} rows: a network can fit a split's training "
                         f"rows exactly whatever their targets, so its validation scores are all the search has "
                         f"to go by; weight penalties, dropout and a small network matter most here, and fewer "
                         f"features (data.drop) may do better")
    return Dataset(X=X, y=y, task=task, classes=classes, groups=groups, has_order=raw.order is not None,
                   periods=periods, times=times, test_times=test_times, rows=rows,
                   feature_names=raw.feature_names,
                   duplicates_dropped=sum(v for k, v in dropped.items() if k != "unreadable images"),
                   duplicates_kept=duplicates == "keep",
                   fingerprint=digest.hexdigest()[:16], source=section.source, images_skipped=skipped,
                   rows_read=rows_read, test_rows_read=len(test.X) + len(test.skipped) if test is not None else 0,
                   dropped=dropped, warnings=warnings,
                   notes=[n for p, _ in parts for n in p.notes], test_mask=mask,
                   test_source=(f"data.test {section.test}" if section.test else
                                f"data.split_column '{section.split_column}'" if section.split_column else ""),
                   files=files, one_hot=vocabulary)


def _encode_categories(part: Raw, vocabulary: dict[str, list[str]], where: str) -> None:
    """``data.categorical: one_hot``: each category column as one 0/1 column per value of the source's rows,
    named ``column=value`` and put after the numeric columns. A value the source never shows (in data.test)
    is all zeros. The whole source gives them here; values only its test rows hold leave the features once the
    test rows are drawn (_test_rows.development_vocabulary)."""
    if not part.categories:
        return
    blocks, names = [part.X], list(part.feature_names or [])
    for name, values in part.categories.items():
        known = vocabulary.get(name, [])
        if "" in known and "(empty)" in known:
            raise DataError(f"column '{name}' of {part.label} holds both empty cells and the text '(empty)', "
                            f"which data.categorical: one_hot would both encode as the column '{name}=(empty)'; "
                            f"write one of them otherwise (fill the empty cells, or rename the text)",
                            source=where, field=f"data.categorical ('{name}')",
                            expected="empty cells or the text '(empty)', not both", found="both")
        blocks.append((values[:, None] == np.asarray(known, dtype=str)[None, :]).astype(np.float64))
        names += [f"{name}={value if value else '(empty)'}" for value in known]
        unseen = sorted(set(values.tolist()) - set(known))
        if unseen:
            part.notes.append(f"column '{name}' of {part.label}: value(s) {', '.join(map(repr, unseen[:5]))} never "
                              f"occur in the development source, so their rows have 0 in every {name}= column")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:  # a numeric column named "city=Berlin" beside a category column city holding Berlin
        raise DataError(f"one-hot encoding {part.label} names more than one column {', '.join(map(repr, twice))} "
                        f"(a column=value name of data.categorical: one_hot is already a column of the file); "
                        f"rename that column, so each feature of the final model has one name", source=where,
                        field="data.categorical", expected="feature names that differ", found=twice[0])
    part.warnings += [w for name, values in part.categories.items() if (w := _checks.many_rare_values(
        values, name, part.label))]
    empty = {n: int((values == "").sum()) for n, values in part.categories.items()}
    part.notes.append(f"{part.label}: " + ", ".join(
        f"'{n}' ({len(vocabulary.get(n, []))} values" + (f", {empty[n]} empty cell(s) as the value (empty)"
                                                         if empty[n] else "") + ")" for n in part.categories)
                      + " one-hot encoded as 0/1 columns named column=value (data.categorical: one_hot); the final "
                      "model's Keras form takes them so encoded, its pyfunc form as text")
    part.X, part.feature_names, part.categories = np.concatenate(blocks, axis=1), names, {}


def _take(part: Raw, idx: np.ndarray, y: bool = True) -> None:
    """Keep the rows ``idx`` of every per-row array of ``part`` (``y`` too, unless already taken)."""
    part.X = part.X[idx]
    if y:
        part.y = part.y[idx]
    for name in ("groups", "order", "test_mask", "rows"):
        if getattr(part, name) is not None:
            setattr(part, name, getattr(part, name)[idx])


def _divide(raw: Raw, mask: np.ndarray, label: str, column: str, where: str) -> tuple[Raw, Raw]:
    if mask.all() or not mask.any():
        raise DataError(f"split column '{column}' of {label} marks {'every' if mask.all() else 'no'} row as test",
                        source=where, field="data.split_column",
                        expected="some rows marked test and some train")
    test = Raw(raw.X, raw.y, raw.groups, raw.order, raw.feature_names, raw.declared_task, label=raw.label,
               rows=raw.rows)
    _take(test, np.nonzero(mask)[0])
    _take(raw, np.nonzero(~mask)[0])
    raw.test_mask = test.test_mask = None
    return raw, test


def _conform(test: Raw, dev: Raw, test_label: str, label: str, where: str) -> None:
    """The test rows must have the development rows' features, in the same order."""
    if dev.feature_names is not None and test.feature_names is not None and test.feature_names != dev.feature_names:
        missing = [c for c in dev.feature_names if c not in test.feature_names]
        extra = [c for c in test.feature_names if c not in dev.feature_names]
        if missing or extra:
            raise DataError(f"the columns of {test_label} differ from those of {label}: "
                            + "; ".join(x for x in (f"missing {missing}" if missing else "",
                                                    f"extra {extra}" if extra else "") if x),
                            source=where, field="data.test", expected="the same feature columns")
        test.X = test.X[:, [test.feature_names.index(c) for c in dev.feature_names]]
        test.feature_names = list(dev.feature_names)
    if test.X.shape[1:] != dev.X.shape[1:]:
        raise DataError(f"the rows of {test_label} have shape {list(test.X.shape[1:])} but those of {label} "
                        f"have {list(dev.X.shape[1:])}", source=where, field="data.test",
                        expected="the same features per row (for images, set data.image_size)")
    for name in ("groups", "order"):
        if (getattr(dev, name) is None) != (getattr(test, name) is None):
            raise DataError(f"{test_label} and {label} differ in having a {name} column", source=where,
                            field="data.test")


def _keep_test_out(dev: Raw, test: Raw, mode: str, kind: str, label: str, test_label: str,
                   dropped: dict[str, int], warnings: list[str], where: str, images: bool = False) -> None:
    """A development row equal to a test row would let training see a test row: its dev copy goes."""
    repeats = _checks.repeats_of(dev.X, test.X)
    n = int(repeats.sum())
    if not n:
        return
    if mode == "refuse":
        raise DataError(f"{n} row(s) of {label} have the same features as a test row of {test_label}; "
                        f"data.duplicates: refuse asks to stop here", source=where, field="data.duplicates",
                        expected="no row in both the development and the test data")
    if mode == "keep":
        warnings.append(f"{n} development row(s) have the same features as a test row and are kept (data.duplicates "
                        f"keeps copies here); where one is a record entered twice, the test score is optimistic")
        return
    before = dev.y
    _take(dev, np.nonzero(~repeats)[0])
    if kind != "regression":
        _checks.vanished_classes(before, dev.y, "the removal of rows that repeat test rows", label, where,
                                 images=images)
    dropped["development rows repeating a test row"] = n


def fingerprint_indices(idx: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(idx, dtype=np.int64).tobytes()).hexdigest()[:16]
