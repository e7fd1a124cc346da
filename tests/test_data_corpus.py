"""A corpus of bad data a user may bring (CSV, npz, image folders, provided test rows).

Each refused case goes through the real CLI's ``run`` (in-process, so the corpus stays fast): exit code
2, one ``error:`` paragraph naming the file and the column or array, no traceback, and no home folder
created. Each warning case goes through ``search check``: exit 0, the warning on stderr, nothing written.
A few cases also run as real subprocesses, so the ``python -m search`` entry point is covered too.
"""
from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import unicodedata
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import TINY, merge, run_cli

ROOT = Path(__file__).resolve().parents[1]
Build = Callable[[Path], Path]  # writes data and a space file into a folder, returns the space file


def _space(folder: Path, data: dict[str, Any], other: dict[str, Any] | None = None) -> Path:
    path = folder / "space.yaml"
    if "test" in data or "split_column" in data:  # TINY's test_size would be refused next to provided rows
        data = {"test_size": None, **data}
    path.write_text(yaml.safe_dump(merge(TINY, merge({"data": data}, other or {})), sort_keys=False))
    return path


def _frame(n: int = 30, classes: int = 3, seed: int = 0, target: str = "label") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.normal(size=n),
                         target: np.arange(n) % classes})


def _dated(n: int = 30, fmt: str = "%d/%m/%Y", start: str = "2024-01-01", seed: int = 0) -> pd.DataFrame:
    days = pd.date_range(start, periods=n, freq="D")
    return _frame(n, classes=2, seed=seed).assign(t=days.strftime(fmt))


TIME_SERIES = {"validation": {"scheme": "time_series", "k": 3}}


def _windows_csv(folder: Path) -> Path:
    """Excel on Windows saves CSV as cp1252: 'Café' is one byte 0xE9 there, invalid as UTF-8."""
    frame = _frame().assign(label=["Café", "Crème", "Thé"] * 10)
    (folder / "bad.csv").write_bytes(frame.to_csv(index=False).encode("cp1252"))
    return _space(folder, {"source": "csv:bad.csv", "target": "label"})


def _encoded(folder: Path, encoding: str, sep: str) -> Path:
    (folder / "bad.csv").write_bytes(_frame().to_csv(index=False, sep=sep).encode(encoding))
    return _space(folder, {"source": "csv:bad.csv", "target": "label"})


def _compressed(folder: Path, name: str) -> Path:
    _frame().to_csv(folder / name, index=False)  # pandas compresses by the name's suffix
    return _space(folder, {"source": f"csv:{name}", "target": "label"})


def _written(name: str, content: bytes) -> Build:
    def build(folder: Path) -> Path:
        (folder / name).write_bytes(content)
        return _space(folder, {"source": f"csv:{name}", "target": "label"})

    return build


def _regression(n: int = 30) -> pd.DataFrame:
    return _frame(n, target="y").assign(y=np.linspace(0.0, 1.0, n))


def _sales(n: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    staff, sqm = rng.integers(3, 30, n), rng.integers(100, 2000, n)
    return pd.DataFrame({"staff": staff, "sqm": sqm, "label": staff * 3000.0 + sqm * 50 + rng.integers(0, 900, n)})


def csv(text_or_frame: Any, data: dict[str, Any] | None = None, name: str = "bad.csv",
        test: Any = None, other: dict[str, Any] | None = None) -> Build:
    """A CSV source (a frame or raw text), optionally a second CSV as data.test."""
    def build(folder: Path) -> Path:
        for file, content in ((name, text_or_frame), ("test.csv", test)):
            if isinstance(content, pd.DataFrame):
                content.to_csv(folder / file, index=False)
            elif content is not None:
                (folder / file).write_text(content)
        extra = {"test": "csv:test.csv"} if test is not None else {}
        return _space(folder, {"source": f"csv:{name}", "target": "label", **extra, **(data or {})}, other)

    return build


def npz(data: dict[str, Any] | None = None, other: dict[str, Any] | None = None, **arrays: Any) -> Build:
    def build(folder: Path) -> Path:
        np.savez(folder / "bad.npz", **arrays)
        return _space(folder, {"source": "npz:bad.npz", **(data or {})}, other)

    return build


def raw_file(name: str, content: bytes, source: str) -> Build:
    def build(folder: Path) -> Path:
        (folder / name).write_bytes(content)
        return _space(folder, {"source": source})

    return build


def _npz_with_raw_member(folder: Path) -> Path:
    np.savez(folder / "bad.npz", X=np.zeros((10, 2)))
    with zipfile.ZipFile(folder / "bad.npz", "a") as archive:
        archive.writestr("y", b"not an array")  # no .npy header: numpy hands back bytes
    return _space(folder, {"source": "npz:bad.npz"})


def _objects(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _image_folder(root: Path, classes: dict[str, int], size: int = 8, seed: int = 0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, count in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def images(layout: Callable[[Path], None], data: dict[str, Any] | None = None) -> Build:
    def build(folder: Path) -> Path:
        layout(folder)
        return _space(folder, {"source": "images:pics", **(data or {})},
                      {"model": {"family": "cnn", "dropout": None, "layers": None, "units": None}})

    return build


def _split_folders(folder: Path) -> None:
    for part, seed in (("test", 1), ("train", 2)):
        _image_folder(folder / "pics" / part, {"cat": 4, "dog": 4}, seed=seed)


def _classes_in_batches(folder: Path) -> None:
    for b, batch in enumerate(("batch1", "batch2")):
        for c, name in enumerate(("cat", "dog", "owl")):
            _image_folder(folder / "pics" / name / batch, {"": 3}, seed=10 * c + b)


def _symlinked_class(folder: Path) -> None:
    _image_folder(folder / "pics", {"cat": 4, "dog": 4})
    os.symlink(folder / "pics" / "cat", folder / "pics" / "tiger")


def _stray_files(folder: Path) -> None:
    """Photos unzipped a level too high, and an iPhone's .heic beside the PNGs: nothing may vanish unsaid."""
    import shutil

    _image_folder(folder / "pics", {"cat": 4, "dog": 4})
    shutil.copy(folder / "pics" / "cat" / "0.png", folder / "pics" / "stray.png")
    (folder / "pics" / "cat" / "IMG_0001.HEIC").write_bytes(b"\0" * 64)
    (folder / "pics" / "dog" / "Thumbs.db").write_bytes(b"\0" * 64)


def _copied_class(folder: Path) -> None:
    import shutil

    _image_folder(folder / "pics", {"cat": 4, "dog": 4})
    shutil.copytree(folder / "pics" / "cat", folder / "pics" / "lion")


def _unseen_test_class(folder: Path) -> None:
    _image_folder(folder / "pics", {"cat": 4, "dog": 4})
    _image_folder(folder / "test", {"cat": 2, "horse": 2}, seed=1)


def _smaller_test_images(folder: Path) -> None:
    _image_folder(folder / "pics", {"cat": 4, "dog": 4})
    _image_folder(folder / "test", {"cat": 2, "dog": 2}, size=6, seed=1)


def _with(frame: pd.DataFrame, **changes: Any) -> pd.DataFrame:
    frame = frame.copy()
    for key, value in changes.items():
        column, _, row = key.rpartition("_")
        frame[column] = frame[column].astype(object if isinstance(value, str) else frame[column].dtype)
        frame.loc[int(row), column] = value
    return frame


def _conflicts(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows 0–5 copied with another label."""
    copies = frame.iloc[:6].copy()
    copies["label"] = (copies["label"] + 1) % 3
    return pd.concat([frame, copies], ignore_index=True)


def _class_only_in_conflicts() -> pd.DataFrame:
    frame = _frame()
    twins = frame[frame.label == 0].assign(label="ghost")  # class 'ghost' repeats class 0's rows
    return pd.concat([frame, twins], ignore_index=True)


def _amounts(folder: Path) -> Path:
    """A German export: semicolons, decimal commas, and a target of amounts with thousands dots."""
    features = _frame(30)[["a", "b", "c"]].to_numpy()
    rows = [f"{a:.2f};{b:.2f};{c:.2f}".replace(".", ",") + f";{1 + i // 10}.{i % 10}00,00"
            for i, (a, b, c) in enumerate(features)]
    (folder / "rent.csv").write_text("\n".join(["a;b;c;Miete", *rows]) + "\n")
    return _space(folder, {"source": "csv:rent.csv", "target": "Miete"})


def _stray_quote(folder: Path) -> Path:
    frame = _frame(30).assign(note="ok")
    lines = frame.to_csv(index=False).splitlines()
    lines[5] = lines[5].rsplit(",", 1)[0] + ',"broken'   # opened here ...
    lines[15] = lines[15].rsplit(",", 1)[0] + ',fix"ed'  # ... and closed ten lines later
    (folder / "bad.csv").write_text("\n".join(lines) + "\n")
    return _space(folder, {"source": "csv:bad.csv", "target": "label", "drop": ["note"]})


def _tied_separators(folder: Path) -> Path:
    frame = _frame(30)
    rows = [f"{a:.2f};{b:.2f};{label}".replace(".", ",") for a, b, label in frame[["a", "b", "label"]].to_numpy()]
    (folder / "bad.csv").write_text("\n".join(["Gewicht, kg;Größe, cm;label", *rows]) + "\n")
    return _space(folder, {"source": "csv:bad.csv", "target": "label"})


def _decomposed_header(folder: Path) -> Path:
    import unicodedata

    _frame().rename(columns={"label": unicodedata.normalize("NFD", "Ergebnis_ä")}).to_csv(folder / "bad.csv",
                                                                                        index=False)
    return _space(folder, {"source": "csv:bad.csv", "target": unicodedata.normalize("NFC", "Ergebnis_ä")})


def _decomposed_values(folder: Path) -> Path:
    import unicodedata

    def some_decomposed(values: list[str]) -> list[str]:
        return [unicodedata.normalize("NFD", c) if i % 3 == 0 else c for i, c in enumerate(values)]

    _frame(30, classes=2).assign(city=some_decomposed(["Zürich", "Köln", "Köln"] * 10),
                                 label=some_decomposed(["Zürich", "Köln"] * 15)).to_csv(folder / "bad.csv", index=False)
    return _space(folder, {"source": "csv:bad.csv", "target": "label", "categorical": "one_hot"})


def _joined_index(folder: Path) -> Path:
    frame = _frame()
    pd.concat([frame.iloc[:20], frame.iloc[20:]]).set_axis(list(range(20)) + list(range(10))).to_csv(
        folder / "bad.csv")
    return _space(folder, {"source": "csv:bad.csv", "target": "label"})



_SPLIT = _frame().assign(part=["test" if i % 5 == 0 else "train" for i in range(30)])
_X, _Y = np.random.default_rng(0).normal(size=(12, 3)), np.arange(12) % 2
DUP_HEADER = "f1,f2,f3,label,label\n" + "".join(f"{i},{i + 1},{i + 2},{i % 2},{i % 3}\n" for i in range(12))

# (id, build, field or None, words the message must hold)
REFUSED: list[tuple[str, Build, str | None, list[str]]] = [
    # A target written 379.702 in a file of decimal commas is text to pandas: the reader crashed on it.
    ("a-dotted-target-in-a-decimal-comma-file", csv("x;y;price\n" + "".join(
        f"{i},5;{i % 3},25;{300 + i}.{(7 * i) % 1000:03d}\n" for i in range(30)), {"target": "price"}),
     "data.target", ["dots ('300.000')", "decimal comma", "300,000 if the dot is a decimal point"]),
    # A spreadsheet's TRUE/FALSE with gaps: pandas gave text of True and False, refused as "found 'False'".
    ("true-and-false-with-gaps", csv("a,flag,label\n" + "".join(
        f"{i}.5,{['TRUE', 'FALSE', ''][i % 3]},{i % 2}\n" for i in range(30))), "data.source",
     ["column 'flag' of", "has 10 missing value(s)", "set data.missing: median"]),
    # A quote opened near the end and never closed: pandas' "EOF inside string starting at row 10", no column.
    ("csv-quote-open-to-the-end", csv("a,b,label\n" + "".join(f"{i},{i}.5,{i % 2}\n" for i in range(9))
                                      + '1,"6,0\n2,3,1\n'), "data.source",
     ["line 11 of the file (data row 9, counting from 0), column 'b' opens a quote", "remove the stray quote"]),
    ("csv-empty-file", csv(""), "data.source", ["bad.csv", "is empty (0 bytes)"]),
    ("csv-blank-lines", csv("\n\n"), "data.source", ["bad.csv", "has no header line"]),
    ("csv-header-only", csv("a,b,label\n"), "data.source", ["bad.csv", "has a header but no data rows"]),
    ("csv-duplicated-target", csv(DUP_HEADER), "data.source",
     ["bad.csv", "duplicated column name", "'label' (2 times)"]),
    ("csv-duplicated-feature", csv("f1,f1,label\n1,2,0\n3,4,1\n"), "data.source", ["'f1' (2 times)"]),
    ("csv-target-is-also-the-group", csv(_frame(), {"group": "label"}, other={"validation": {"scheme": "group_kfold"}}),
     "data.group", ["column 'label'", "named as data.target and as data.group", "one column has one role"]),
    # Each scheme's refusal named the other: time_series asked for group_kfold, group_kfold for time_series.
    ("csv-group-and-order-together", csv(_dated().assign(pid=np.arange(30) % 5), {"group": "pid", "order": "t"},
                                         other={"validation": {"scheme": "group_kfold"}}), "data.group",
     ["keep each group whole and in time order, which no scheme here gives"]),
    ("csv-names-repeated-once-spaces-go", csv("a,a ,label\n1,2,0\n3,4,1\n"), "data.source", ["'a' (2 times)"]),
    ("csv-without-a-header-line", csv("0.5,1.2,0\n0.3,0.1,1\n0.7,0.4,0\n"), "data.target",
     ["no such column", "first line holds numbers: the file needs a header line"]),
    ("csv-comment-before-the-header", csv("# exported by a tool\na,b,label\n1,2,0\n3,4,1\n"), "data.target",
     ["no such column", "first line is a comment"]),
    ("csv-target-named-in-another-case", csv(_frame(), {"target": "Label"}), "data.target",
     ["no such column", "(did you mean 'label'?)", "found 'Label'"]),
    ("csv-group-misspelt", csv(_frame().assign(patient=np.arange(30) % 5), {"group": "patinet"},
                               other={"validation": {"scheme": "group_kfold"}}), "data.group",
     ["no such column", "(did you mean 'patient'?)"]),
    ("csv-feature-overflow", csv(_with(_frame(), b_4=1e300)), "data.source",
     ["column 'b'", "bad.csv", "become infinite as float32", "row 4"]),
    ("csv-feature-negative-overflow", csv(_with(_frame(), c_2=-1e39)), "data.source", ["column 'c'", "float32"]),
    ("csv-feature-inf", csv(_with(_frame(), a_3=np.inf)), "data.source", ["column 'a'", "NaN or infinite"]),
    ("csv-regression-target-overflow", csv(_with(_regression(), y_7=1e300), {"target": "y"}), "data.target",
     ["target 'y'", "bad.csv", "squared errors overflow float32"]),
    ("csv-regression-target-too-large-to-square", csv(_with(_regression(), y_2=2e19), {"target": "y"}),
     "data.target", ["target 'y'", "beyond ±1e+18", "rescale the target", "row 2"]),
    # 1e-25 of a unit: squared errors below float32's smallest normal number, R² of -1.7e49, no error at all
    ("csv-regression-target-too-small-to-square", csv(_regression().assign(y=lambda f: f["y"] * 1e-25),
                                                      {"target": "y"}),
     "data.target", ["target 'y'", "standard deviation of only 2.98e-26", "multiply it by 1e26"]),
    ("csv-regression-target-inf", csv(_with(_regression(), y_1=-np.inf), {"target": "y"}), "data.target",
     ["target 'y'", "NaN or infinite"]),
    ("csv-conflicts-refused", csv(_conflicts(_frame()), {"duplicates": "refuse"}), "data.duplicates",
     ["bad.csv", "identical features", "12 rows in 6 group(s) whose copies disagree", "rows 0, 30"]),
    ("csv-exact-duplicates-refused", csv(pd.concat([_frame(), _frame().iloc[:2]]), {"duplicates": "refuse"}),
     "data.duplicates", ["2 repeated copies"]),
    ("json-given-as-csv", _written("bad.json", _frame().to_json(orient="records").encode()), "data.source",
     ["bad.json is JSON text, not CSV text", "pandas.read_json(path).to_csv"]),
    ("xlsx-given-as-csv", _written("bad.xlsx", b"PK\x03\x04" + bytes(60)), "data.source",
     ["bad.xlsx is an Excel workbook (.xlsx) or a zip archive, not CSV text", "CSV UTF-8"]),
    ("parquet-given-as-csv", _written("bad.parquet", b"PAR1" + bytes(60)), "data.source",
     ["bad.parquet is a Parquet file, not CSV text"]),
    ("csv-gaps-named-by-row", csv(_with(_with(_with(_frame(), b_4=np.nan), b_9=np.nan), c_2=np.nan)), "data.source",
     ["column 'b'", "2 missing value(s)", "in rows 4, 9, counting from 0",
      "other columns with missing values: 'c' (1)"]),
    ("csv-excel-error-cell", csv(_with(_frame(), b_7="#DIV/0!")), "data.source",
     ["column 'b'", "cells '#DIV/0!' (1)", "first at row 7 of 'b'", "found '#DIV/0!'"]),
    # Gaps marked two ways: both named with their counts (it named the first, and one more run found the next).
    ("csv-gap-markers-named-together", csv(_with(_with(_with(_frame(60), b_3="-"), b_5="?"), b_8="-")), "data.source",
     ["column 'b'", "cells '-' (2), '?' (1)", "first at row 3 of 'b'"]),
    # A spreadsheet writes a small negative rounded to zero as -0.0: equal to 0.0, so the row is a copy.
    ("csv-negative-zero-copy-refused", csv(pd.concat([_with(_frame(), a_0=-0.0), _with(_frame(), a_0=0.0).iloc[:1]]),
                                           {"duplicates": "refuse"}), "data.duplicates", ["1 repeated copy"]),
    # Nearly every row a copy, dropped: the k error said to lower k, which ran a study on the 9 rows left.
    ("copies-leave-too-few-rows-for-k", csv(pd.concat([_frame(30, classes=3)] * 9, ignore_index=True),
                                            {"duplicates": "drop"}, other={"validation": {"k": 10}}), "validation.k",
     ["stratified 10-fold", "data.duplicates dropped 240 of the 270 rows as copies", "set data.duplicates: keep"]),
    # 'YES' once beside 'Yes': the error told a stranger to lower validation.k, making it a class of its own.
    ("csv-label-differing-only-by-case", csv(_frame(30, classes=2).assign(
        label=["Yes", "No"] * 14 + ["Yes", "YES"])), "data.target",
     ["class 'YES' has only 1 row(s)", "it differs from class 'Yes' only by case or surrounding spaces"]),
    ("csv-class-lost-to-dedup", csv(_class_only_in_conflicts(), {"duplicates": "drop"}), "data.duplicates",
     ["class(es) '0' (10 rows), 'ghost' (10 rows)", "lose every row", "de-duplication"]),
    ("csv-split-column-bad-values", csv(_SPLIT.assign(part=["maybe"] + ["train"] * 29), {"split_column": "part"}),
     "data.split_column", ["split column 'part'", "bad.csv", "found ['maybe']"]),
    ("csv-missing-feature-values-say-how-to-fill", csv(_with(_frame(), b_4=np.nan)), "data.source",
     ["column 'b'", "1 missing value(s) (as written: empty cells (1))", "or set data.missing: median"]),
    ("csv-missing-target-with-data-missing", csv(_with(_frame(), label_2=np.nan), {"missing": "median"}),
     "data.target", ["column 'label'", "1 missing value", "data.missing fills feature columns only"]),
    ("csv-empty-feature-column-to-fill", csv(_frame().assign(b=np.nan), {"missing": "mean"}), "data.missing",
     ["column 'b'", "has no value in any row", "drop the column"]),
    ("csv-infinite-feature-with-data-missing", csv(_with(_frame(), a_3=np.inf), {"missing": "median"}),
     "data.source", ["column 'a'", "infinite values", "row 3"]),
    ("class-only-in-the-latest-rows", csv(_frame(30, classes=2).assign(t=np.arange(30), label=[0, 1] * 13 + [2] * 4),
                                          {"order": "t"}), "data.test_size",
     ["class(es) 2 occur only in the held-out test rows (the latest rows; 4 row(s))", "never sees"]),
    ("constant-regression-target", csv(_regression().assign(y=3.5), {"target": "y"}), "data.target",
     ["the target 'y' of", "bad.csv is 3.5 in every row", "nothing to learn"]),
    ("one-class-target", csv(_frame(30).assign(label=1)), "data.target",
     ["the target 'label' of", "bad.csv is 1 in all its 30 rows: there is nothing to learn", "at least two classes"]),
    ("classification-forced-on-a-measurement", csv(_frame(30).assign(label=np.linspace(0.05, 9.95, 30)),
                                                   {"task": "classification"}), "data.task",
     ["target holds 30 different numbers, not all whole", "task: regression"]),
    ("csv-split-column-missing", csv(_frame(), {"split_column": "part"}), "data.split_column",
     ["no such column", "found 'part'"]),
    ("csv-split-column-all-test", csv(_SPLIT.assign(part="test"), {"split_column": "part"}),
     "data.split_column", ["marks every row as test"]),
    ("csv-split-column-no-test", csv(_SPLIT.assign(part=0), {"split_column": "part"}), "data.split_column",
     ["marks no row as test"]),
    ("csv-split-column-empty-value", csv(_with(_SPLIT, part_3=np.nan), {"split_column": "part"}),
     "data.split_column", ["1 empty value"]),
    ("csv-group-missing-value", csv(_with(_frame().assign(g=np.arange(30) % 5), g_3=np.nan), {"group": "g"}),
     "data.group", ["column 'g'", "1 missing value"]),
    ("csv-numeric-target-with-na-words",
     csv(_frame().to_csv(index=False).replace(",2\n", ",NA\n", 2).replace(",1\n", ",\n", 1)), "data.target",
     ["column 'label'", "3 missing value(s) (as written: 'NA' (2), empty cells (1))"]),
    # A text target's empty cells were counted with its 'NA' cells as missing; with the empty rows gone, 'NA'
    # was then a class: the first message had asked to drop rows the second kept.
    ("csv-text-target-with-empty-and-na-cells",
     csv(_frame(30, classes=2).assign(label=["yes", "no"] * 15).to_csv(index=False)
         .replace(",yes\n", ",NA\n", 2).replace(",no\n", ",\n", 3)), "data.target",
     ["column 'label'", "3 missing value(s) (as written: empty cells (3))", "the cells 'NA' (2) are read as a "
      "class of their own, not as missing"]),
    # A temperature of -6 to 10 read as 17 classes: the advice was a smaller k, for a 17-class classifier.
    ("csv-whole-number-quantity-too-rare-for-its-folds",
     csv(_frame(40).assign(label=[-6 + i % 17 for i in range(40)]), {"test": "csv:test.csv", "test_size": None},
         test=_frame(9, seed=2).assign(label=[0, 1, 2] * 3)), "validation.k",
     ["the target's 17 whole numbers are read as classes: set data.task: regression if it is a quantity"]),
    ("test-size-with-test", csv(_frame(), {"test_size": 0.3}, test=_frame(9, seed=2)), "data.test_size",
     ["no effect when the test rows are provided"]),
    # 20 for 20 %: "expected a number below 1" did not say that it is 0.2.
    ("test-size-as-a-percentage", csv(_frame(), {"test_size": 20}), "data.test_size",
     ["the share of the rows held out for the test, below 1: 0.2 (or '20%') holds out 20 % of them"]),
    ("test-and-split-column", csv(_SPLIT, {"split_column": "part"}, test=_frame(9, seed=2)),
     "data.split_column", ["one way"]),
    ("test-file-missing", csv(_frame(), {"test": "csv:nowhere.csv"}), "data.test",
     ["does not exist", "nowhere.csv"]),
    ("test-columns-differ", csv(_frame(), test=_frame(9, seed=2).drop(columns="b")), "data.test",
     ["test.csv", "missing ['b']"]),
    ("test-unseen-label", csv(_frame(), test=_frame(9, seed=2).assign(label=[0] * 8 + [7])), "data.test",
     ["test label(s) 7 (1 row)", "test.csv", "never occur"]),
    ("test-header-only", csv(_frame(), test="a,b,c,label\n"), "data.test",
     ["test.csv", "has a header but no data rows"]),
    ("test-duplicated-columns", csv(_frame(), test="a,b,c,label,label\n1,2,3,0,1\n"), "data.test",
     ["test.csv", "'label' (2 times)"]),
    ("test-overflow", csv(_frame(), test=_with(_frame(9, seed=2), a_0=3e38 * 10)), "data.test",
     ["column 'a'", "test.csv", "float32"]),
    ("dev-rows-all-in-test", csv(_frame(), test=_frame(30)), "data.duplicates",
     ["lose every row", "repeat test rows"]),
    ("split-column-on-sklearn", lambda f: _space(f, {"source": "sklearn:iris", "split_column": "part"}),
     "data.split_column", ["sklearn:iris is a bundled data set", "names a column of a CSV"]),
    ("test-regression-target-text", csv(_regression(), {"target": "y"}, test=_regression(9).assign(y="high")),
     "data.target", ["target 'y'", "test.csv", "not numeric"]),
    ("test-from-sklearn", csv(_frame(), {"test": "sklearn:iris"}), "data.test", ["no separate test rows"]),
    ("npz-object-X", npz(X=_objects([[1, 2]] * 10), y=np.arange(10) % 2), "data.source",
     ["array 'X'", "bad.npz", "object array", "never unpickled"]),
    ("npz-object-y", npz(X=_X, y=_objects(["a", 1] * 6)), "data.target", ["array 'y'", "object array"]),
    ("npz-object-group", npz({"group": "g"}, X=_X, y=_Y, g=_objects([None] * 12)), "data.group",
     ["array 'g'", "object array"]),
    ("npz-member-not-an-array", _npz_with_raw_member, "data.target", ["member 'y'", "not a NumPy array"]),
    ("npz-y-two-targets", npz(X=_X, y=np.eye(2)[_Y] * 0.5), "data.target",
     ["array 'y'", "one value per row", "several targets", "shape (12, 2)"]),
    ("npz-no-feature-columns", npz(X=np.zeros((12, 0)), y=_Y), "data.source", ["has no feature columns"]),
    ("npz-order-with-nan", npz({"order": "t"}, X=_X, y=_Y, t=np.where(np.arange(12) == 3, np.nan, np.arange(12.0))),
     "data.order", ["array 't'", "1 missing (NaN)", "first at row 3"]),
    ("npz-y-3d", npz(X=_X, y=np.zeros((12, 1, 1))), "data.target", ["array 'y'", "shape (12, 1, 1)"]),
    ("csv-several-text-columns", csv(_frame().assign(name=[f"p{i}" for i in range(30)], sex=["m", "f"] * 15)),
     "data.source", ["2 columns of", "are not numeric: 'name':", "(data.drop: [name])", "'sex':", "get_dummies",
                     "or set data.categorical: one_hot"]),
    ("drop-a-column-that-is-not-there", csv(_frame(), {"drop": ["nope"]}), "data.drop",
     ["data.drop names 1 column(s) that", "does not have: 'nope'", "found 'nope'"]),
    # Every wrong name at once, and the one meant where it differs by case.
    ("drop-columns-in-another-case", csv(_frame(), {"drop": ["A", "nope"]}), "data.drop",
     ["data.drop names 2 column(s) that", "'A' (did you mean 'a'?), 'nope'", "found ['A', 'nope']"]),
    ("drop-written-as-one-string", csv(_frame(), {"drop": "a, b"}), "data.drop",
     ["'a, b' (one name with commas: a list is written [a, b])"]),
    # A text column and gaps elsewhere: both said at once, not the gaps on the next run.
    ("text-column-and-gaps-elsewhere", csv(_with(_frame(), b_4=np.nan).assign(c=["x1"] * 30)), "data.source",
     ["column 'c' of", "is not numeric", "the file also has empty cells in 'b' (1): set data.missing: median"]),
    ("drop-the-target", csv(_frame(), {"drop": ["label"]}), "data.drop",
     ["column 'label'", "is data.target, so it cannot also be dropped"]),
    ("drop-on-an-npz", npz({"drop": ["a"]}, X=_X, y=_Y), "data.drop", ["a npz: source has no named columns"]),
    ("categorical-on-an-npz", npz({"categorical": "one_hot"}, X=_X, y=_Y), "data.categorical",
     ["a npz: source has none"]),
    ("npz-feature-names-of-another-length", npz(X=_X, y=_Y, feature_names=np.array(["a"])), "data.source",
     ["array 'feature_names'", "must name each column of X once"]),
    ("free-text-with-one-hot-categories", csv(_frame().assign(name=[f"p{i}" for i in range(30)]),
                                              {"categorical": "one_hot"}), "data.source",
     ["column 'name'", "30 different texts in 30 rows"]),
    ("npz-that-is-a-csv", raw_file("bad.npz", b"a,b,label\n1,2,0\n", "npz:bad.npz"), "data.source",
     ["is not a NumPy .npz archive", "starts with 'a,b,label'", "csv:<path>"]),
    ("npz-one-group-of-text", npz({"group": "g"}, {"validation": {"scheme": "group_kfold", "k": 2}}, X=_X, y=_Y,
                                  g=np.array(["x"] * 12)), "data.group", ["every row is in group 'x':"]),
    ("csv-header-repeated-as-a-row", csv(_frame().to_csv(index=False) + "a,b,c,label\n" + _frame(4, seed=3)
                                         .to_csv(index=False, header=False)), "data.source",
     ["repeats its header line as a data row", "line(s) 32", "delete those lines"]),
    ("npz-order-with-nat", npz({"order": "t"}, X=_X, y=_Y,
                               t=np.where(np.arange(12) == 4, np.datetime64("NaT"), np.datetime64("2024-01-01")
                                          + np.arange(12).astype("timedelta64[D]"))),
     "data.order", ["array 't'", "1 missing (NaT)", "first at row 4"]),
    # Every day is the 12th or earlier, and reading them day-first or month-first orders the rows differently.
    ("dates-that-read-both-ways", csv(_frame(12, classes=2).assign(
        t=[f"{d:02d}/{m:02d}/2024" for m, d in zip([1, 2, 3] * 4, range(1, 13))]), {"order": "t"}, other=TIME_SERIES),
     "data.order", ["read as %m/%d/%Y and as %d/%m/%Y", "different orders", "year first"]),
    ("an-impossible-date", csv(_dated(30, "%Y-%m-%d").assign(t=lambda f: f["t"].where(f.index != 7, "2024-02-30")),
                               {"order": "t"}, other=TIME_SERIES),
     "data.order", ["mixes '2024-01-01' with values in another form or not a date at all (1 row(s), first at row 7, "
                    "counting from 0)", "found '2024-02-30'"]),
    ("test-order-numbers-against-dates", csv(_dated(), {"order": "t"}, test=_dated(9, seed=2).assign(t=range(9)),
                                             other=TIME_SERIES),
     "data.order", ["holds numbers but that of", "dates"]),
    ("quantity-read-as-classes", csv(_regression().assign(y=1e9 + np.arange(30) % 16), {"target": "y"}),
     "data.target", ["has only 1 row(s)", "16 whole numbers are read as classes", "data.task: regression"]),
    ("a-label-misspelled-once", csv(_frame(40, classes=2).assign(label=["no"] * 31 + ["yes"] * 8 + ["yse"])),
     "data.target", ["class 'yse' has only 1 row(s)", "(it is spelled like class 'yes': a typo?)"]),
    ("target-constant-in-float32", csv(_regression().assign(y=1e9 + np.arange(30) % 7),
                                       {"target": "y", "task": "regression"}),
     "data.target", ["varies only past float32's precision", "subtract a constant"]),
    ("identifier-column-merged-in-float32", csv(_frame(30, classes=2).assign(a=2**60 + np.arange(30), b=0.0, c=0.0)),
     "data.duplicates", ["lose every row to de-duplication", "column 'a'", "if it identifies the rows, drop it"]),
    ("npz-scalar-X", npz(X=np.float64(3.0), y=_Y), "data.source", ["array 'X'", "single value"]),
    ("npz-1d-X", npz(X=np.arange(12.0), y=_Y), "data.source", ["array 'X'", "is 1-D", "(n, 1)"]),
    ("npz-length-mismatch", npz(X=_X, y=_Y[:9]), "data.source", ["different numbers of rows", "'X' 12", "'y' 9"]),
    ("npz-group-length-mismatch", npz({"group": "g"}, X=_X, y=_Y, g=np.arange(5)), "data.source",
     ["'g' 5", "'X' 12"]),
    ("npz-string-X", npz(X=np.array([["a", "b"]] * 12), y=_Y), "data.source", ["array 'X'", "not numeric", "<U1"]),
    ("npz-complex-X", npz(X=_X.astype(complex), y=_Y), "data.source", ["not numeric", "complex128"]),
    ("npz-feature-overflow", npz(X=np.where(np.eye(12, 3, -2) > 0, 1e300, _X), y=_Y), "data.source",
     ["feature 0", "bad.npz", "become infinite as float32"]),
    ("npz-regression-overflow", npz({"task": "regression"}, X=_X, y=np.r_[np.linspace(0, 1, 11), 1e39]),
     "data.target", ["target 'y'", "squared errors overflow float32", "row 11"]),
    ("npz-empty-file", raw_file("bad.npz", b"", "npz:bad.npz"), "data.source", ["bad.npz", "is empty (0 bytes)"]),
    ("npz-not-an-archive", raw_file("bad.npz", b"PK\x03\x04 garbage", "npz:bad.npz"), "data.source",
     ["cannot read", "bad.npz"]),
    ("npz-plain-npy", lambda f: (np.save(f / "x.npy", _X), _space(f, {"source": "npz:x.npy"}))[1], "data.source",
     ["x.npy", "single .npy array"]),
    ("npz-zero-rows", npz(X=np.zeros((0, 3)), y=np.zeros(0)), "data.source", ["bad.npz", "has no rows"]),
    ("csv-names-a-folder", lambda f: (f / "bad.csv").mkdir() or _space(f, {"source": "csv:bad.csv", "target": "y"}),
     "data.source", ["bad.csv is a folder, not a data file"]),
    ("images-names-a-file", lambda f: [(f / "pics").write_text("a,b\n"), _space(f, {"source": "images:pics"})][1],
     "data.source", ["pics is a file, not a folder"]),
    ("npz-2d-rows-for-a-cnn", npz(other={"model": {"family": "cnn", "dropout": None, "layers": None, "units": None}},
                                  X=np.random.default_rng(0).random((30, 8, 8)), y=np.arange(30) % 2),
     "model.family", ["set data.as_images: true to read them as pixels"]),
    # Compressed or binary bytes under a .csv name: pandas unpacks by the name's ending only, and read garbage.
    ("csv-gzip-under-a-plain-name", _written("bad.csv", gzip.compress(_frame().to_csv(index=False).encode())),
     "data.source", ["bad.csv is gzip-compressed data, not CSV text", "name it .csv.gz"]),
    ("csv-binary-bytes", _written("bad.csv", np.random.default_rng(0).integers(0, 256, 3000, np.uint8).tobytes()),
     "data.source", ["bad.csv is binary data (", "control bytes in its first", "not CSV text"]),
    # A line cut short: its last cells are no empty cells, and the error says which line holds fewer fields.
    ("csv-a-line-cut-short", csv("a,b,c,label\n" + "".join(f"{i}.5,{i % 4},{i % 7},{i % 3}\n" if i != 5 else
                                                             "5.5,1\n" for i in range(30))),
     "data.source", ["column 'c' of", "1 missing value(s) (as written: none, 1 of them on line(s) with fewer fields "
                     "than the header, such as line 7, 2 fields where the header has 4: a line cut short"]),
    # A text feature column: what to do with it depends on what it holds.
    # Nothing else in the file says which mark the comma is: 1,000 may be one (a decimal comma, quoted).
    ("text-feature-thousands-separators",
     csv(pd.DataFrame({"a": [f"{1000 + i:,}" for i in range(30)], "b": range(30), "label": np.arange(30) % 3})),
     "data.source", ["column 'a'", "not numeric", "thousands separators", "found '1,000'"]),
    # Every data line one field longer than the header (salaries over 1,000, unquoted): pandas took the thousands
    # as the rows' index and read every column one to the left, silently (salary 756.68 for 63,756.68).
    ("csv-every-line-longer-than-the-header",
     csv("salary,age,label\n" + "".join(f"{20 + i},{100 + i}.5,{30 + i},{i % 2}\n" for i in range(30))),
     "data.source", ["30 of its 30 data lines hold more fields than the header", "line 2, 4 fields where the header "
                     "names 3: '20,100.5,30,0'", "thousands separator"]),
    # Most lines so, the first not: it was taken for a title above the header.
    ("csv-most-lines-longer-than-the-header",
     csv("a,b,label\n" + "".join(f"{i},{100 + i}.5,0.3,{i % 2}\n" if i % 4 else f"{100 + i}.5,0.3,{i % 2}\n"
                                   for i in range(30))),
     "data.source", ["line 3 of the file holds 4 fields where the header names 3 columns"]),
    # Accounting's negatives: said to be free text, with advice to leave the column out.
    ("text-feature-negatives-in-parentheses",
     csv(_frame().assign(a=[f"({100 + i}.5)" if i % 3 == 0 else f"{100 + i}.5" for i in range(30)])), "data.source",
     ["column 'a'", "negative numbers are written in parentheses", "such as '(100.5)'", "-100.5 for (100.5)"]),
    ("text-feature-dates", csv(_frame().assign(a=[f"2024-01-{i + 1:02d}" for i in range(30)])), "data.source",
     ["column 'a'", "it holds dates", "data.order"]),
    ("text-feature-free-text", csv(_frame().assign(a=[f"customer {i}" for i in range(30)])), "data.source",
     ["column 'a'", "30 different texts in 30 rows", "leave it out (data.drop: [a])"]),
    ("text-feature-category", csv(_frame().assign(a=["red", "green", "blue"] * 10)), "data.source",
     ["column 'a'", "a category (3 values)", "pandas.get_dummies(frame, columns=['a'])"]),
    # A folder named without its kind was told to remove image_size, its own setting (a source of arrays).
    ("images-folder-without-its-kind", images(lambda f: _image_folder(f / "pics", {"cat": 4, "dog": 4}),
                                              {"source": "pics", "image_size": [8, 8]}), "data.source",
     ["unknown data source: 'pics' is a folder", "write 'images:pics'"]),
    ("images-kind-misspelt", images(lambda f: _image_folder(f / "pics", {"cat": 4, "dog": 4}),
                                    {"source": "image:pics"}), "data.source",
     ["found 'image:pics'", "write 'images:pics'"]),
    ("images-class-of-one-image", images(lambda f: _image_folder(f / "pics", {"cat": 4, "dog": 1})), "data.source",
     ["class folder 'dog' of pics holds only 1 image(s)", "add images to it, or remove the folder"]),
    ("images-symlinked-class", images(_symlinked_class), "data.source",
     ["class folders", "cat", "tiger", "same images under two class names", "symlink"]),
    ("images-copied-class", images(_copied_class), "data.duplicates",
     ["class(es)", "'cat' (4 rows)", "'lion' (4 rows)", "lose every row"]),
    ("images-test-unseen-class", images(_unseen_test_class, {"test": "images:test"}), "data.test",
     ["'horse' (2 rows)", "never occur"]),
    ("images-test-other-size", images(_smaller_test_images, {"test": "images:test"}), "data.test",
     ["have shape [6, 6, 3]", "[8, 8, 3]", "data.image_size"]),
    ("target-numbers-with-question-marks",
     csv(_with(_with(_frame().assign(label=np.arange(30) % 6 + 0.5), label_5="?"), label_6="?")), "data.target",
     ["target 'label'", "holds numbers, but it is read as text", "cells such as '?' (2 in all, first at row 5",
      "data.task: classification"]),
    ("target-cells-of-spaces", csv(_with(_with(_frame().assign(label=["x", "y", "z"] * 10), label_7=" "),
                                        label_8=" ")), "data.target",
     ["column 'label'", "2 missing value(s)", "rows 7, 8"]),
    ("a-stray-quote-swallows-rows", _stray_quote, "data.source",
     ["row 4 of", "column 'note'", "a quote (\") opened in that cell is closed only lines later"]),
    ("a-total-row-below-the-rows", csv(pd.concat([_sales(), _sales().sum().to_frame().T])), "data.source",
     ["the last row of", "(row 30, counting data rows from 0) holds the sums of the other rows in column(s) 'staff', "
      "'sqm', 'label'", "a spreadsheet's Total row", "Delete it"]),
    ("a-total-row-of-a-dropped-name-column", csv(
        pd.concat([_sales().assign(shop=[f"s{i}" for i in range(30)]), _sales().sum().to_frame().T.assign(
            shop="Total")]), {"drop": ["shop"]}), "data.source", ["holds the sums of the other rows in column(s)"]),
    # A column centred on zero sums to a value inside its own range; an average column holds no sum at all.
    ("a-total-row-beside-a-zero-centred-and-an-average-column", csv(pd.concat([
        _sales().assign(margin=np.random.default_rng(2).normal(0.0, 1.0, 30), rate=np.linspace(1, 2, 30)),
        _sales().sum().to_frame().T.assign(margin=0.0, rate=1.5)]).pipe(
            lambda f: f.assign(margin=[*f["margin"].iloc[:30], f["margin"].iloc[:30].sum()]))), "data.source",
     ["the last row of", "holds the sums of the other rows in column(s) 'staff', 'sqm', 'label'"]),
    ("npz-total-row-on-top", npz(X=np.vstack([_sales().to_numpy()[:, :2].sum(axis=0), _sales().to_numpy()[:, :2]]),
                                 y=np.concatenate([[_sales()["label"].sum()], _sales()["label"]])),
     "data.source", ["the first row of", "(row 0, counting data rows from 0) holds the sums"]),
    ("title-lines-above-the-header", csv("Report: customer export\nGenerated 2024-05-01\n\n"
                                         + _frame().to_csv(index=False)), "data.source",
     ["the 3 line(s) above line 4 hold fewer fields than the rows from there on (1 against 4)",
      "delete the line(s) above line 4"]),
    ("a-row-with-a-field-too-many", csv(_frame().to_csv(index=False).replace("\n", ",7\n", 6).replace(",7\n", "\n", 5)),
     "data.source", ["holds 5 fields where the header names 4 columns", "without quotes around it"]),
    ("one-hot-names-collide", csv(_frame().assign(**{"Stadt=Berlin": 1.0, "Stadt": ["Berlin", "Köln"] * 15}),
                                  {"categorical": "one_hot"}), "data.categorical",
     ["more than one column 'Stadt=Berlin'", "rename that column"]),
    ("one-hot-empty-cells-beside-the-text-empty",
     csv(_frame().assign(site=["A", "", "(empty)"] * 10), {"categorical": "one_hot"}), "data.categorical ('site')",
     ["column 'site'", "both empty cells and the text '(empty)'", "'site=(empty)'"]),
    ("a-column-with-no-value", csv(_frame().assign(e=np.nan)), "data.source",
     ["column 'e'", "30 missing value(s)", "no value in any row, so leave it out (data.drop: [e])"]),
    ("utf-16-without-its-mark", _written("bad.csv", _frame().to_csv(index=False).encode("utf-16-le")), "data.source",
     ["is UTF-16 text without a byte-order mark", "save it as UTF-8"]),
    ("a-feature-cell-of-spaces", csv(_with(_frame(), a_3=" ")), "data.source",
     ["column 'a'", "its numbers have cells of spaces only where values are missing: set data.missing"]),
    ("images-split-folders", images(_split_folders), "data.source",
     ["the folders test, train of", "splits of the data, not classes", "pics/train (and data.test: images:",
      "pics/test, or leave"]),
    ("images-with-data-order", images(lambda f: _image_folder(f / "pics", {"a": 4, "b": 4}), {"order": "t"}),
     "data.order", ["images:pics is a folder of class folders, with no columns", "has no time order"]),
    ("images-with-data-missing", images(lambda f: _image_folder(f / "pics", {"a": 4, "b": 4}), {"missing": "median"}),
     "data.missing", ["an image folder has none, so it would be ignored"]),
    ("images-one-name-in-two-unicode-forms",
     images(lambda f: (_image_folder(f / "pics", {unicodedata.normalize("NFD", "ñandú"): 3, "b": 3}),
                       _image_folder(f / "pics", {unicodedata.normalize("NFC", "ñandú"): 3}, seed=4))),
     "data.source", ["one name written in two Unicode forms", "rename one of them"]),
    ("images-without-class-folders", images(lambda f: _image_folder(f, {"pics": 5})), "data.source",
     ["must hold one subfolder per class, at least 2 (it holds 5 image file(s) directly, e.g. 0.png",
      "subfolder named after the class"]),
    ("images-split-column", images(lambda f: _image_folder(f / "pics", {"a": 3, "b": 3}), {"split_column": "x"}),
     "data.split_column", ["needs a csv or npz source, not images"]),
]


@pytest.mark.parametrize("build, field, needles", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_bad_data_is_refused_before_anything_is_stored(build: Build, field: str | None, needles: list[str],
                                                       tmp_path: Path, capsys) -> None:
    space = build(tmp_path)
    home = tmp_path / "home"
    capsys.readouterr()
    code = run_cli("run", space, "--home", home, "--quiet")
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert "Traceback" not in out + err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    if field is not None:
        assert f"field '{field}'" in err, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    assert not home.exists(), "a refused run must not create its home folder"


def _mixed_spellings() -> pd.DataFrame:
    frame = _frame(36, classes=2).assign(label=["yes", "no"] * 18)
    frame.loc[[1, 3], "label"] = "no"
    frame.loc[[0, 2, 8, 10], "label"] = "yes "
    frame.loc[[4, 6, 12, 14], "label"] = "Yes"
    return frame


def _y_column(folder: Path) -> Path:
    np.savez(folder / "col.npz", X=np.random.default_rng(0).normal(size=(30, 3)), y=(np.arange(30) % 2)[:, None])
    return _space(folder, {"source": "npz:col.npz"})


# (id, build, words on stderr, words on stdout)
WARNED: list[tuple[str, Build, list[str], list[str]]] = [
    ("labels-differ-by-space-or-case", csv(_mixed_spellings()),
     ["warning: labels of", "'yes' (", "'yes ' (4 rows)", "'Yes' (4 rows)", "separate classes"],
     ["classes (4"]),
    ("conflicting-duplicates-dropped", csv(_conflicts(_frame()), {"duplicates": "drop"}),
     ["warning:", "6 feature row(s) that appear with different labels", "12 rows in all: 4 of the 12 of class",
      "every copy is dropped"],
     ["36 read", "12 conflicting duplicates", "24 kept"]),
    # The same rows under the default: a third of them share features with another label, the nature of coarse
    # features, not a record entered twice; dropping them dropped the hardest rows and flattered the scores.
    # Continuous features, a few rows entered again with another label: records entered twice, dropped by auto.
    ("conflicting-copies-of-distinct-rows-dropped-by-auto", csv(_conflicts(_frame(120))), ["every copy is dropped"],
     ["126 read, 12 dropped (12 conflicting duplicates)"]),
    # Auto keeps copies of coarse features, and says where a copy with the same label crosses the test boundary
    # (a stranger's file: 32 of 56 test rows had one in training, unsaid); a copy with another label is no leak.
    ("same-label-copies-kept-by-auto-across-the-test-rows",
     csv(pd.concat([_conflicts(_frame(40)), _frame(40).iloc[6:26]], ignore_index=True)),
     ["warning: ", "of the 14 test rows have an exact copy, label and all, among the development rows",
      "data.duplicates: auto kept every row"], ["every row is kept (data.duplicates: auto)"]),
    ("conflicting-duplicates-kept-where-they-are-common", csv(_conflicts(_frame())), [],
     ["36 read, 0 dropped", "12 of its 36 rows (33%) share their features with rows of another label",
      "every row is kept (data.duplicates: auto)", "data.duplicates: drop drops them anyway"]),
    ("y-with-one-column", _y_column, [], ["note: array 'y'", "shape (30, 1)", "one value per row"]),
    # Transactions sorted by their stamp and split at random: the future sits among the training rows.
    ("rows-in-time-order-split-at-random", csv(_frame(40).assign(ts=np.arange(40) * 3600 + 1.7e9)), [
        "warning: column 'ts' of", "rises with the rows: the rows are in time order", "set data.order: ts"],
     ["features: 4"]),
    ("dates-as-text-in-order-left-out", csv(_frame(40).assign(day=pd.date_range("2024-01-01", periods=40)
                                                            .strftime("%Y-%m-%d")), {"drop": ["day"]}),
     ["column 'day' of", "rises with the rows"], ["features: 3"]),
    # Agent codes, most held by a row or two: one-hot encoded into a column each, said with a note only.
    ("category-of-many-rare-values", csv(_frame(120, classes=2).assign(agent=[f"A{i // 2:03d}" for i in range(120)]),
                                         {"categorical": "one_hot"}),
     ["warning: column 'agent' of", "holds 60 distinct values, 60 of them in 2 rows or fewer",
      "leave the column out (data.drop) or group its rare values"], ["one-hot encoded as 0/1 columns"]),
    # Prices of which a few (typos of x8, or real mansions) hold most of the variance: the squared error is theirs.
    ("skewed-regression-target",
     csv(_frame(200, target="label").assign(label=np.r_[np.random.default_rng(3).lognormal(11.7, 0.3, 197),
                                                        [1.0e6, 9.6e5, 1.1e6]])),
     ["warning: the target 'label' is skewed: its 2 row(s) farthest from its mean (1% of the rows) hold",
      "predicting its logarithm is the usual remedy (add a column log(label)"], ["task: regression"]),
    # "1,095" quoted in a comma-separated file whose other numbers write decimal points: a US export's thousands.
    ("csv-quoted-thousands-beside-decimal-points", csv(_frame().assign(a=[f"{1000 + 7 * i:,}" for i in range(30)])),
     [], ["column 'a' of", "groups its thousands with commas ('1,000'): read as thousands separators", "features: 3"]),
    ("csv-a-line-cut-short-filled-by-data-missing",
     csv("a,b,label,c\n" + "".join(f"{i}.5,{i % 4},{i % 3},{i % 7}\n" if i != 5 else "5.5,1,2\n" for i in range(30)),
         {"missing": "median"}),
     [], ["1 data line(s) of", "hold fewer fields than its header (line 7: 3 of 4 fields): the cells they lack are "
          "read as missing", "in 'c' (1): each split fills them"]),
    # A spreadsheet of a decimal-comma locale saved with commas between fields: its decimals quoted ("0,126").
    ("csv-quoted-decimal-commas", csv(_frame().assign(a=lambda f: f["a"].map(lambda v: f"{v:.3f}".replace(".", ",")))),
     [], ["column 'a' of", "writes decimal commas inside quotes (", "read as decimals", "features: 3"]),
    # Copied from a document: a typographic minus, a no-break space after the number, an invisible header mark.
    ("csv-typeset-numbers-and-an-invisible-header-mark",
     csv("a\u200b,b,c,label\n" + "".join(f"\u2212{i}.5,{i}\u00a0,{i % 7},{i % 3}\n" for i in range(30))),
     [], ["column 'a' of", "with minus sign U+2212 ('\\u22120.5', 30 cell(s)): read as numbers, so that one is -0.5",
          "column 'b' of", "no-break space", "column name 'a\\u200b' of", "holds invisible characters: read as 'a'",
          "features: 3"]),
    # The same in a file of semicolons and decimal commas, where the minus column is the only decimal one.
    ("csv-semicolons-typographic-minus-and-decimal-commas",
     csv("a;b;c;label\n" + "".join(f"\u2212{i},5;{i % 4};{i % 7};{i % 3}\n" for i in range(30))),
     [], ["with decimal commas", "column 'a' of", "minus sign U+2212 ('\\u22120,5', 30 cell(s)): read as numbers, "
                                                  "so that one is -0.5", "features: 3"]),
    ("csv-separated-by-semicolons", csv(_frame().to_csv(index=False, sep=";")), [],
     ["features: 3", "is separated by semicolons, not commas: read that way"]),
    ("csv-semicolons-and-decimal-commas", csv(_frame().to_csv(index=False, sep=";", decimal=",")), [],
     ["features: 3", "separated by semicolons, not commas, with decimal commas"]),
    # Excel's amounts where the comma is the decimal mark: thousands grouped by dots (German) or spaces (French).
    ("target-amounts-with-thousands-dots", _amounts, [],
     ["column 'Miete' of", "groups its thousands ('1.000,00'): read as 1000.00", "task: regression"]),
    # An export's code for "missing" read as a value: scaled, the column became a flag of the coded rows.
    ("a-missing-value-code-among-measurements", csv(_frame().assign(b=lambda f: f["b"].where(f.index % 10 != 3, -999))),
     ["column 'b' of", "holds -999 in 3 rows, far outside its other values", "a code for a missing value?",
      "set data.missing"], ["features: 3"]),
    ("csv-decimal-commas-and-thousands-dots",
     csv("a;b;label\n" + "".join(f"{'1.317,0' if i == 5 else f'{700 + i},0'};{i},5;{i % 2}\n" for i in range(30))),
     [], ["column 'a' of", "groups its thousands ('1.317,0'): read as 1317.0", "features: 2"]),
    ("csv-decimal-commas-and-thousands-no-break-spaces",
     csv("a;b;label\n" + "".join(f"{i + 1}\u00a0{100 + i},5;{i},5;{i % 2}\n" for i in range(30))),
     [], ["groups its thousands ('1 100,5'): read as 1100.5"]),
    # Only dotted numbers, in a file of decimal commas: the dot cannot be the decimal mark there.
    ("csv-decimal-commas-and-dotted-whole-numbers",
     csv("a;b;label\n" + "".join(f"{i + 1}.{100 + i};{i},5;{i % 2}\n" for i in range(30))),
     [], ["groups its thousands ('1.100'): read as 1100"]),
    ("csv-decimal-commas-beside-a-column-of-decimal-points",
     csv("a;b;label\n" + "".join(f"{1000 + i}.25;{i},5;{i % 2}\n" for i in range(30))),
     [], ["column 'a' of", "writes decimal points ('1000.25') where the file's other numbers have decimal commas"]),
    # A semicolon file from a US locale: thousands grouped by commas, decimals with points (read as 3.625 before).
    ("csv-semicolons-and-thousands-commas-beside-plain-numbers",
     csv("a;b;label\n" + "".join(f"{'3,625' if i == 4 else 900 + i};{i}.25;{i % 2}\n" for i in range(30))),
     [], ["column 'a' of", "groups its thousands with commas ('3,625' beside '900')", "so 3,625 is 3625",
          "features: 2"]),
    ("csv-semicolons-thousands-commas-only-beside-decimal-points",
     csv("a;b;label\n" + "".join(f"{i + 1},{100 + i};{i}.25;{i % 2}\n" for i in range(30))),
     [], ["groups its thousands with commas ('1,100')", "so 1,100 is 1100"]),
    ("true-and-false-with-gaps-filled", csv("a,flag,label\n" + "".join(
        f"{i}.5,{['TRUE', 'FALSE', ''][i % 3]},{i % 2}\n" for i in range(30)), {"missing": "median"}), [],
     ["column 'flag' of", "holds TRUE and FALSE with 10 empty cell(s): read as 1 and 0 with missing values",
      "features: 2"]),
    # Where another column writes decimal commas (0,25), the comma is the file's decimal mark: 3,625 is 3.625,
    # said beside the whole numbers it sits with.
    ("csv-decimal-commas-and-three-decimals-beside-whole-numbers",
     csv("a;b;label\n" + "".join(f"{'3,625' if i == 4 else 900 + i};{i},25;{i % 2}\n" for i in range(30))),
     [], ["column 'a' of", "writes numbers such as '3,625' beside '900'; read with the file's decimal comma, 3,625 "
          "is 3.625", "with decimal commas"]),
    ("csv-data-lines-end-with-a-separator-the-header-lacks",
     csv("a,b,label\n" + "".join(f"{i}.5,{i % 7}.25,{i % 2},\n" for i in range(30))),
     [], ["30 data line(s) end with a separator the header line does not", "features: 2 (a, b)"]),
    ("csv-semicolons-decimal-commas-and-whole-numbers",
     csv("a;b;c;label\n" + "".join(f"{i};-0,{i + 1}32;0,64;{i % 3}\n" for i in range(30))), [],
     ["features: 3", "with decimal commas"]),
    ("csv-separated-by-tabs", csv(_frame().to_csv(index=False, sep="\t")), [],
     ["features: 3", "is separated by tabs, not commas"]),
    ("y-one-hot", npz(X=np.random.default_rng(0).normal(size=(30, 3)), y=np.eye(3)[np.arange(30) % 3]), [],
     ["note: array 'y'", "is one-hot (3 columns, one 1 per row): read as the class of each row, 0 to 2",
      "classes (3"]),
    ("pandas-index-column", csv(_frame().sample(frac=1, random_state=0).to_csv()), [],
     ["features: 3", "no name of its own and holds unique whole numbers: a row index",
      "note: data.source csv:bad.csv is the file "]),  # found relative to a folder: which file it was
    ("labels-that-pandas-reads-as-missing", csv(_frame(30, classes=2).assign(label=["NA", "None"] * 15)),
     ["warning: target 'label'", "the label(s) 'NA', 'None' (30 rows: rows 0, 1, 2, 3, 4, ...", "classes of their own",
      "delete them from the file"],
     ["classes (2", "NA ", "None "]),
    ("dates-written-day-first", csv(_dated(30, "%d/%m/%Y", "2024-01-05"), {"order": "t"}, other=TIME_SERIES), [],
     ["read as dates (%d/%m/%Y)"]),
    ("dotted-dates-read-day-first", csv(_dated(12, "%d.%m.%Y", "2024-03-01"), {"order": "t"}, other=TIME_SERIES), [],
     ["read as dates (%d.%m.%Y); no day past the 12th tells it from %m.%d.%Y", "validation 2024-03-04 to 2024-03-05"]),
    ("iso-times-with-and-without-fractions",
     csv(_frame(12, classes=2).assign(t=[f"2024-01-01T10:00:{s:02d}" + (".5" if s % 2 else "") for s in range(12)]),
         {"order": "t"}, other=TIME_SERIES), [], ["read as dates (ISO8601)"]),
    ("npz-order-datetime64", npz({"order": "t"}, other=TIME_SERIES, X=np.random.default_rng(0).normal(size=(30, 3)),
                                 y=np.arange(30) % 2, t=np.datetime64("2024-01-01") + np.arange(30)[::-1]
                                 .astype("timedelta64[D]")), [], ["development rows: "]),
    ("test-rows-earlier-than-development-rows",
     csv(_dated(30, "%Y-%m-%d"), {"order": "t"}, test=_dated(9, "%Y-%m-%d", "2024-01-20", seed=2), other=TIME_SERIES),
     ["warning: 9 of the 9 test rows", "not later in time than the latest development row (t 2024-01-30"], []),
    ("dates-as-whole-numbers-merged-in-float32", csv(_frame(31, classes=2).assign(a=20240101 + np.arange(31))),
     ["warning: column 'a'", "31 distinct values are 17 in float32", "subtract a constant"], []),
    ("drop-text-columns", csv(_frame().assign(name=[f"p{i}" for i in range(30)]), {"drop": ["name", "c"]}), [],
     ["features: 2"]),
    ("categories-one-hot", csv(_frame().assign(port=["S", "C", "NA"] * 10, name=[f"p{i}" for i in range(30)]),
                               {"categorical": "one_hot", "drop": ["name"]},
                               test=_frame(9, seed=2).assign(port=["S", "Q", "C"] * 3, name="x")), [],
     ["features: 6", "'port' (3 values) one-hot encoded as 0/1 columns named column=value",
      "value(s) 'Q' never occur in the development source"]),
    # A time-series stranger's patients: 60 patients' visits under plain k-fold gave R² 0.93, by group 0.
    ("rows-of-one-patient-under-plain-k-fold", csv(_frame(60).assign(patient=[f"P{i % 12}" for i in range(60)]),
                                                   {"drop": ["patient"]}),
     ["warning: column 'patient' of", "names 12 different values over 60 rows (5.0 rows each on average)",
      "set data.group: patient with validation.scheme: group_kfold"], ["features: 3"]),
    # A group holding most rows: its split validates on 46 rows, another on 2; each counted alike.
    ("one-group-holds-most-rows", csv(_frame(72).assign(g=["big"] * 50 + [f"s{i % 11}" for i in range(22)]),
                                      {"group": "g", "test_size": 0.1}, other={"validation": {"scheme": "group_kfold",
                                                                                              "k": 3}}),
     ["warning: group_kfold's validation splits hold", "group 'big' alone holds 50 of the"], []),
    # Whole groups drawn for the test rows, with the class tied to the group: other shares than the development's.
    ("test-groups-of-another-class-mix", csv(_frame(80, classes=2).assign(
        g=[f"g{i // 4}" for i in range(80)], label=[int(i // 4 < 8) for i in range(80)]), {"group": "g"},
        other={"validation": {"scheme": "group_kfold", "k": 3}}),
     ["test rows (whole groups) hold the classes in other shares than the development rows"], []),
    # A date typed 2203 for 2023: the latest rows are the test rows, so the typo picked them.
    ("a-date-far-beyond-the-others", csv(_dated(60, "%Y-%m-%d").assign(
        t=lambda f: f["t"].where(f.index != 7, "2203-01-15")), {"order": "t"}, other=TIME_SERIES),
     ["the order column 't' of", "1 row(s) (2203-01-15) lie far after all the others (2024-01-01 to 2024-02-29)",
      "a typo?"], []),
    ("labels-that-join-other-labels", csv(_frame(60, classes=2).assign(
        label=["news", "sports"] * 24 + ["sports,news"] * 8 + ["news;sports"] * 4)),
     ["warning: labels of", "'sports,news' (8 rows), 'news;sports' (4 rows) join other labels with a separator",
      "multi-label task"], ["classes (4"]),
    ("a-label-misspelled-three-times",
     csv(_frame(60, classes=2).assign(label=["no"] * 45 + ["yes"] * 12 + ["yse"] * 3), {"test_size": 0.1},
         other={"validation": {"scheme": "kfold", "k": 2}}),
     ["warning: labels of", "class 'yse' (3 rows) is spelled like 'yes' (12 rows): a typo?"], ["classes (3"]),
    ("category-values-padded-cased-and-misspelled",
     csv(_frame(40).assign(site=["Plant A"] * 20 + ["Plant A "] * 5 + ["plant a"] * 4 + ["Plant B"] * 10
                           + ["Plnat B"]), {"categorical": "one_hot"}),
     ["values of column 'site'", "differ only by case: 'Plant A' (25 rows), 'plant a' (4 rows)",
      "value 'Plnat B' (1 row) is spelled like 'Plant B' (10 rows)"],
     ["column 'site' of", "5 value(s) with surrounding spaces (such as 'Plant A ') taken without them"]),
    ("a-column-that-gives-the-class-away",
     csv(_frame(60, classes=2).assign(ticket=lambda f: f["label"] * 3 + np.arange(60) % 2)),
     ["warning: column 'ticket' ranks the two classes apart alone (ROC AUC 1.000) on the development rows",
      "leave it out (data.drop)"], []),
    ("a-column-that-is-the-target-in-other-units",
     csv(_regression().assign(y_days=lambda f: f["y"] * 7 + 1), {"target": "y"}),
     ["warning: column 'y_days' follows the target alone (correlation +1.000)"], []),
    ("a-column-that-is-the-log-of-a-heavy-tailed-target", csv(pd.DataFrame(
        {"rooms": np.arange(60) % 5, "price": np.random.default_rng(3).lognormal(6.0, 1.5, 60)}).assign(
            log_price=lambda f: np.log(f["price"]) + np.random.default_rng(4).normal(0.0, 0.01, 60)),
        {"target": "price"}),
     ["warning: column 'log_price' follows the target's order alone (rank correlation +"], []),
    ("labels-01-and-1", csv(_frame(30, classes=2).assign(label=["01", "1", "2"] * 10)), [],
     ["classes (2", "labels written differently are read as the same number", "'01' and '1'"]),
    ("labels-read-as-missing-in-a-semicolon-file",
     csv(_frame(30, classes=2).assign(label=["NA", "EU"] * 15).to_csv(index=False, sep=";", decimal=",")),
     ["the label(s) 'NA' (15 rows"], ["classes (2", "with decimal commas"]),
    ("na-labels-under-a-spaced-header",
     csv(_frame(30, classes=2).assign(label=["NA", "EU"] * 15).to_csv(index=False).replace(",", ", ", 3)),
     ["the label(s) 'NA' (15 rows"], ["classes (2"]),
    ("two-trailing-commas", csv(_frame().to_csv(index=False).replace("\n", ",,\n")), [],
     ["features: 3", "column 5 of", "column 6 of", "(a trailing comma?): ignored"]),
    ("empty-rows-below-the-table", csv(_frame().to_csv(index=False) + ",,,\n,,,\n\n"), [],
     ["features: 3", "2 line(s) of empty cells (lines 32, 33; a spreadsheet leaves them below its table) left out",
      "classes (3, development/test rows): 0 8/2, 1 8/2, 2 8/2"]),
    ("excel-sep-line", csv("sep=;\n" + _frame().to_csv(index=False, sep=";", decimal=",")), [],
     ["features: 3", "starts with Excel's 'sep=;' line: read as separated by semicolons", "with decimal commas"]),
    ("utf-16-unicode-text", lambda folder: _encoded(folder, "utf-16", "\t"), [],
     ["features: 3", "read as utf-16", "classes (3"]),
    ("gzipped-csv", lambda folder: _compressed(folder, "bad.csv.gz"), [], ["features: 3", "classes (3"]),
    ("zipped-csv", lambda folder: _compressed(folder, "bad.csv.zip"), [], ["features: 3", "classes (3"]),
    ("pandas-index-saved-twice", csv(_frame().sort_values("label").reset_index().sample(frac=1, random_state=0)
                                     .rename(columns={"index": "Unnamed: 0"}).to_csv()), [],
     ["features: 3", "column 2 ('Unnamed: 0') of", "no name of its own and holds unique whole numbers"]),
    ("an-id-column-in-shuffled-order", csv(_frame().assign(id=np.random.default_rng(1).permutation(30))), [],
     ["features: 4", "column 'id' of", "numbers the rows in another order (each of 0 to 29 once)"]),
    ("group-ids-spelled-two-ways", csv(_frame().assign(patient=[f"p{i % 10}" if i < 20 else f"P{i % 10} "
                                                                for i in range(30)]),
                                       {"group": "patient"}, other={"validation": {"scheme": "group_kfold"}}),
     ["warning: group ids (patient) of", "'P1 ' (1 row), 'p1' (2 rows)", "rows of one may sit on both sides"], []),
    ("images-stray-and-unreadable-kinds", images(_stray_files), ["warning: nothing is searched"],
     ["1 image file(s) directly in", "(stray.png) belong to no class folder: left out",
      "that are not images this reads were left out (1 .heic)"]),
    ("a-class-too-small-for-the-test-set", csv(_frame(60, classes=2).assign(label=[0] * 58 + [1] * 2),
                                               other={"validation": {"k": 2}}),
     ["warning: class(es) 1 have no test row (a share of 0.2 of 2 rows rounds to none)"], []),
    ("spaces-after-the-commas", csv(_frame().to_csv(index=False).replace(",", ", ")), [], ["features: 3"]),
    ("a-column-that-counts-the-rows", csv(_frame().assign(id=np.arange(1, 31))), [],
     ["features: 4", "column 'id' of", "counts the rows (1, 2, 3, ...) and is used as a feature"]),
    ("windows-1252-text", _windows_csv, [], ["classes (3", "Café", "Crème", "is not UTF-8 text: read as cp1252"]),
    ("missing-feature-values-filled", csv(_with(_with(_frame(), b_4=np.nan), a_9=np.nan), {"missing": "median"}),
     [], ["note: 2 missing value(s) in", "'a' (1), 'b' (1): each split fills them with the median of its "
          "training rows (data.missing: median)"]),
    ("trailing-commas", csv(_frame().to_csv(index=False).replace("\n", ",\n")), [],
     ["features: 3", "column 5 of", "neither a name nor values (a trailing comma?): ignored"]),
    ("dev-row-repeats-test-row", csv(_frame(), test=_frame(30).iloc[:3]), [],
     ["3 development rows repeating a test row", "test rows: 3 (provided by data.test csv:test.csv"]),
    ("dev-row-repeats-test-row-kept", csv(_frame(), {"duplicates": "keep"}, test=_frame(30).iloc[:3]),
     ["warning: 3 development row(s) have the same features as a test row and are kept"], ["33 kept"]),
    ("separators-tied-in-the-header", _tied_separators, [],
     ["features: 2", "read as separated by semicolons, not commas", "column(s) 'label'"]),
    ("header-in-decomposed-unicode", _decomposed_header, [], ["features: 3", "classes (3"]),
    # macOS writes 'ü' as 'u' and a combining mark: printed alike, they were two classes and two columns.
    ("values-in-decomposed-unicode", _decomposed_values, [],
     ["features: 5 (a, b, c, city=Köln, city=Zürich)", "classes (2, development/test rows): Köln ",
      "column 'city' of", "10 value(s) written in decomposed Unicode (such as '", "7 characters) read in composed form",
      "column 'label' of", "Zürich 12/3"]),
    # Visits 0 to 7 read as 8 classes, then scored as underfit with no word of the guess.
    ("a-count-read-as-classes",
     csv(_frame(48).assign(label=[i % 8 for i in range(48)]), other={"validation": {"k": 2}}),
     [], ["classes (8", "note: the target 'label' holds 8 consecutive whole numbers (0 to 7), read as 8 classes by "
          "task: auto; if it counts or measures something, set data.task: regression"]),
    ("true-false-labels-spelled-three-ways", csv(_frame(30, classes=2).assign(
        label=["TRUE", "False", "true", "FALSE", "True", "false"] * 5)), [],
     ["classes (2", "labels written differently are read as the same true/false value, so as one class"]),
    ("labels-with-surrounding-spaces-are-quoted", csv(_frame(30, classes=2).assign(label=[" yes", "no"] * 15)),
     [], ["classes (2, development/test rows): ' yes' 12/3, no 12/3"]),
    ("an-id-named-column", csv(_frame().assign(customer_no=np.sort(np.random.default_rng(2).choice(
        np.arange(100000, 999999), 30, replace=False)))), [],
     ["features: 4", "column 'customer_no' of", "named as an identifier and holds a different whole number"]),
    ("an-index-of-joined-frames", _joined_index, [],
     ["features: 3", "whole numbers, some repeated (the index of frames joined with pandas.concat)"]),
    ("labels-as-numbers-and-words", csv(_frame(40, classes=2).assign(label=["yes", "no"] * 10 + ["1", "0"] * 10)),
     ["warning: target 'label'", "writes its labels as numbers ('0', '1') and as words ('no', 'yes')",
      "they are 4 classes"], ["classes (4"]),
    ("whole-number-amounts-read-as-classes", csv(_frame(40).assign(label=[1000 + 50 * (i % 4) for i in range(40)])),
     ["warning: the target 'label' holds 4 different whole numbers (1000 to 1150), read as classes by task: auto",
      "set data.task: regression"], ["classes (4"]),
    # Days that share their features (weekday, promotion) are separate observations: averaged as duplicates,
    # 30 days became 2 rows holding every later target.
    ("time-ordered-rows-with-the-same-features", csv(
        pd.DataFrame({"t": pd.date_range("2024-01-01", periods=30).strftime("%Y-%m-%d"), "promo": [0, 1] * 15,
                      "sales": np.arange(30) * 1.5 + 0.25}), {"order": "t", "target": "sales"}, other=TIME_SERIES),
     [], ["rows: 30 read, 0 dropped", "task: regression",
          "features: 1 (promo); read but not features: 't' (data.order)"]),
    ("a-target-far-from-zero-that-varies-little", csv(_frame(40).assign(
        label=1e9 + np.random.default_rng(0).normal(0, 700, 40))), ["warning: the target 'label' is about 1e+09",
                                                                      "it moves in steps of 64"], ["task: regression"]),
    ("most-rows-dropped-as-duplicates", csv(pd.DataFrame({"promo": list(range(10)) * 3,
                                                          "sales": np.arange(30) * 1.5 + 0.25}), {"target": "sales"},
                                            other={"validation": {"scheme": "holdout"}}),
     ["20 of 30 rows are dropped as duplicates", "data.duplicates: keep"], ["10 kept"]),
    ("a-zip-code-is-named-as-a-code", csv(_frame().assign(zip_code=[90210, 10001, 60614, 30301, 73301] * 6)), [],
     ["features: 4", "column 'zip_code' of", "named as a code and holds whole numbers", "10001 less than 90210",
      "data.drop: [zip_code]"]),
    ("thousands-dots-in-a-semicolon-file", csv("Einwohner;Alter;label\n" + "".join(
        f"{['2.762', '758', '19.999', '1.204.331'][i % 4]};{20 + i};{i // 4 % 2}\n" for i in range(30))), [],
     ["column 'Einwohner' of", "writes its numbers with a dot every three digits ('2.762' beside '758'): read as "
      "thousands separators, so 2.762 is 2762", "features: 2"]),
    ("a-column-dropped-by-its-name-as-the-header-spaces-it", csv(_frame().rename(columns={"a": " a "}),
                                                                {"drop": [" a "]}), [],
     ["features: 2 (b, c)", "column(s) ' a ' of"]),
    ("group-kfold-with-too-few-groups-of-a-class",
     csv(_frame(32, classes=2).assign(pid=[f"p{i // 8}" for i in range(32)], label=[(i // 8) % 2 for i in range(32)]),
         {"group": "pid"}, other={"validation": {"scheme": "group_kfold", "k": 3}}),
     ["group_kfold puts each group of data.group wholly on one side, and too few groups hold that class",
      "fewer splits (validation.k)"], []),
    ("cells-of-spaces-are-missing-values-to-fill", csv(_with(_frame(), a_3=" "), {"missing": "median"}), [],
     ["column 'a' of", "1 cell(s) of spaces only read as missing values, which data.missing fills", "features: 3"]),
    ("a-column-of-mostly-gaps-to-fill", csv(_frame().assign(d=[1.5] + [None] * 28 + [2.5]), {"missing": "median"}),
     [], ["'d' of", "is mostly gaps (93% of the rows)", "add a 0/1 column that says which rows have a value"]),
    ("npz-arrays-by-other-names", npz(features=_X, labels=_Y), [],
     ["array 'features' read as the features and 'labels' as the target (data.target names another array)"]),
    ("account-numbers-with-leading-zeros", csv(_frame().assign(acct=[f"{(i * 7919) % 100000:06d}" for i in range(30)])
                                               .astype({"acct": str})), [],
     ["column 'acct' of", "writes its numbers with leading zeros ('000000')", "data.drop: [acct]"]),
    ("a-constant-column-is-named", csv(_frame().assign(version=1.0)), [],
     ["features: 4", "column(s) 'version' of", "hold one value in every row: nothing to learn from"]),
    ("a-dropped-column-is-named", csv(_frame().assign(note="x"), {"drop": ["note"]}), [],
     ["features: 3", "column(s) 'note' of", "left out (data.drop)"]),
    ("one-hot-values-differ-by-case", csv(_frame().assign(city=["Berlin", "berlin", "Köln"] * 10),
                                          {"categorical": "one_hot"}),
     ["warning: values of column 'city' of", "'Berlin' (10 rows), 'berlin' (10 rows)", "one-hot encoded as a column"],
     ["features: 6"]),
    ("images-classes-kept-in-batches", images(_classes_in_batches), ["warning: nothing is searched"],
     ["classes (3", "rows: 18 read", "data.source images:pics is the folder"]),
    ("images-test-folder-missing-a-class",
     images(lambda f: (_image_folder(f / "pics", {"a": 6, "b": 6, "c": 6}),
                       _image_folder(f / "test", {"a": 2, "b": 2}, seed=5)),
            {"test": "images:test", "test_size": None}),
     ["warning: nothing is searched", "warning: class(es) 'c' have no row among the provided test rows"], []),
    # Dropped copies were a count only (or "rows 12, 13" when refused): the files are what the user must find.
    ("images-copied-across-and-within-classes", images(lambda f: (
        _image_folder(f / "pics", {"a": 6, "b": 6}),
        shutil.copy(f / "pics" / "a" / "0.png", f / "pics" / "b" / "x.png"),
        shutil.copy(f / "pics" / "a" / "1.png", f / "pics" / "a" / "y.png"))),
     ["appear with different labels (2 rows in all: 1 of the 7 of class 'a', 1 of the 7 of class 'b'; e.g. "
      "a/0.png, b/x.png)",
      "1 file(s) repeat another file of the same class and are left out, one copy kept (a/1.png, a/y.png)"], []),
    ("images-link-to-nothing", images(lambda f: (_image_folder(f / "pics", {"a": 6, "b": 6}),
                                                 os.symlink(f / "nowhere.png", f / "pics" / "a" / "gone.png"))),
     ["warning: nothing is searched"], ["1 image link(s) in the class folders of", "a/gone.png", "git annex get"]),
    # A category only test rows hold was a feature of every model: the test rows decided the inputs.
    ("a-category-only-in-the-test-rows", csv(_SPLIT.assign(city=["Oslo" if i == 5 else ["Rome", "Bonn"][i % 2]
                                                                  for i in range(30)]),
                                             {"split_column": "part", "categorical": "one_hot"}), [],
     ["features: 5 (a, b, c, city=Bonn, city=Rome)", "value(s) 'Oslo' occur only in the held-out test rows",
      "'city' (2 values) one-hot encoded"]),  # it said 3 values, Oslo's among them, beside 2 columns
    # A code of a three-class target (0, 1, 2 for its labels) went without a word: binary targets only.
    ("a-code-of-a-multiclass-target", csv(_frame(30).assign(outcome_code=lambda f: f["label"] * 2.0 + 1)),
     ["column 'outcome_code' sorts the rows into all 3 classes alone"], ["features: 4"]),
    # Copies that differ below float32 (what the model reads) were kept, and sat on both sides of splits.
    ("copies-that-differ-below-float32-are-duplicates", csv(pd.concat(
        [_frame(30), _frame(30).iloc[:10].assign(a=lambda f: np.nextafter(f["a"], 9))], ignore_index=True)), [],
     ["rows: 40 read, 10 dropped (10 exact duplicates)"]),
    # A 0/1 label with one 0.5 typed by hand: read as a quantity, unsaid.
    ("class-labels-with-a-stray-value", csv(_frame(120, classes=2).assign(label=[0.5] + [i % 2 for i in range(119)])),
     ["warning: the target 'label' holds the whole numbers 0, 1 in 119 of its 120 rows, and 0.5 (1 row) in the "
      "other 1", "read it as a quantity (regression) because of those"], ["task: regression"]),
    # 40 features for 40 rows (a gene panel): fitted exactly by any network, unsaid.
    ("more-features-than-rows", csv(pd.DataFrame(np.random.default_rng(5).normal(size=(40, 40)),
                                                 columns=[f"g{i}" for i in range(40)]).assign(label=[0, 1] * 20)),
     [], ["note: 40 features for 40 rows: a network can fit a split's training rows exactly"]),
    # A file named without its kind, as a stranger writes it, and a share written as a percentage.
    ("csv-source-without-its-kind", lambda folder: _space_as_written(csv(_frame(40, classes=2))(folder)), [],
     ["data: csv:bad.csv", "test rows: 10 (held out: test_size 0.25"]),
    ("split-column-marks", csv(_SPLIT.assign(part=[" Test" if i % 5 == 0 else "TRAIN" for i in range(30)]),
                               {"split_column": "part"}), [],
     ["test rows: 6 (provided by data.split_column 'part'; test_size does not apply)", "development rows: 24"]),
]


def _space_as_written(space: Path) -> Path:
    written = yaml.safe_load(space.read_text())
    written["data"].update(source="bad.csv", test_size="25%")
    space.write_text(yaml.safe_dump(written, sort_keys=False))
    return space


@pytest.mark.parametrize("build, err_words, out_words", [c[1:] for c in WARNED], ids=[c[0] for c in WARNED])
def test_doubtful_data_is_checked_with_a_warning_or_note(build: Build, err_words: list[str], out_words: list[str],
                                                         tmp_path: Path, capsys) -> None:
    space = build(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    assert run_cli("check", space) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    for word in err_words:
        assert word in err, f"{word!r} not in {err!r}"
    if not err_words:
        assert err == ""
    for word in out_words:
        assert word in out, f"{word!r} not in {out!r}"
    assert "pass every check; nothing was trained or stored" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "check must write nothing"


@pytest.mark.parametrize("case", ["csv-duplicated-target", "npz-object-y", "images-symlinked-class",
                                  "csv-split-column-bad-values"])
def test_refusals_through_the_real_entry_point(case: str, tmp_path: Path) -> None:
    _, build, field, needles = next(c for c in REFUSED if c[0] == case)
    space = build(tmp_path)
    home = tmp_path / "home"
    done = subprocess.run([sys.executable, "-m", "search", "run", str(space), "--home", str(home)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert f"field '{field}'" in done.stderr and all(n in done.stderr for n in needles), done.stderr
    assert not home.exists()


def test_the_corpus_has_at_least_forty_bad_inputs() -> None:
    names = [c[0] for c in REFUSED] + [c[0] for c in WARNED]
    assert len(set(names)) == len(names) and len(REFUSED) >= 40


def test_spellings_of_one_number_are_said_as_one_class_only_for_a_class_target(tmp_path: Path, capsys) -> None:
    """A regression target written -0.0 and 0.0 was told "labels written differently are read as the same number,
    so as one class": a class target's note, where there are no classes."""
    frame = _regression(60).assign(y=[round(v) for v in np.linspace(-2, 2, 60)])
    (tmp_path / "rows.csv").write_text(frame.to_csv(index=False).replace(",0\n", ",-0.0\n", 1), encoding="utf-8")
    assert "-0.0" in (tmp_path / "rows.csv").read_text()
    for task, said in (("regression", False), ("classification", True)):
        space = _space(tmp_path, {"source": "csv:rows.csv", "target": "y", "task": task})
        assert run_cli("check", space) == 0
        out, err = capsys.readouterr()
        assert ("labels written differently are read as the same number" in out + err) is said, (task, out + err)


def test_a_path_under_the_home_folder_is_read_as_a_shell_reads_it(tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "me").mkdir()
    _frame().to_csv(tmp_path / "me" / "rows.csv", index=False)
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    space = _space(tmp_path, {"source": "csv:~/rows.csv", "target": "label"})
    assert run_cli("check", space) == 0, capsys.readouterr().err
    assert "features: 3" in capsys.readouterr().out


def test_a_summary_of_many_classes_shows_the_first_ones_and_counts_the_rest() -> None:
    from search.data._summary import DataSummary

    summary = DataSummary(source="csv:x.csv", rows_read=1500, dropped={}, rows=1500, features=3, input_shape=[3],
                          task="multiclass", dev_rows=1000, test_rows=500, test_plan="stratified",
                          split_plan="kfold", classes={f"c{i}": [2, 1] for i in range(500)})
    line = next(line for line in summary.lines() if "classes (500" in line)
    assert line.endswith("c29 2/1, ... and 470 more") and len(line) < 400



def test_honest_data_has_no_column_that_gives_the_target_away() -> None:
    """The giveaway threshold sits above what real features reach alone (breast_cancer's best AUC 0.975,
    diabetes' best correlation 0.59), so the bundled sets, and a noisy copy of a leak, draw no warning."""
    from sklearn.datasets import load_breast_cancer, load_diabetes

    from search.data._leaks import giveaways

    X, y = load_breast_cancer(return_X_y=True)
    assert giveaways(X, y, "binary", None) == []
    X, y = load_diabetes(return_X_y=True)
    assert giveaways(X, y, "regression", None) == []
    noisy = np.random.default_rng(0).normal(size=len(y))
    assert giveaways(np.column_stack([X, y + 20 * noisy]), y, "regression", None) == []
    assert giveaways(np.column_stack([X, y]), y, "regression", None)[0].startswith("feature 10 follows the target")
    # A flag that names the class in 99 % of the rows (AUC 0.99, below SEPARATES) is said; one that names it in
    # 98.5 %, as the mushroom data's odor does honestly, and one that only echoes a 99 % majority class, are not.
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 1000)
    flag = lambda wrong: np.where(np.arange(1000) < wrong, 1 - y, y)  # noqa: E731
    said = giveaways(np.column_stack([rng.normal(size=1000), flag(10)]), y, "binary", ["x", "refunded"])
    assert len(said) == 1 and said[0].startswith("column 'refunded' names the class alone in 99.0% of the rows "
                                                 "(each of its 2 values nearly always one class)"), said
    assert giveaways(np.column_stack([rng.normal(size=1000), flag(15)]), y, "binary", None) == []
    rare = (np.arange(1000) < 10).astype(int)
    assert giveaways(np.column_stack([rng.normal(size=1000), np.zeros(1000) + (np.arange(1000) == 500)]), rare,
                     "binary", None) == []
    three = rng.integers(0, 3, 1000)
    assert "names the class alone in 99.5%" in giveaways(np.column_stack([rng.normal(size=1000), np.where(
        np.arange(1000) < 5, (three + 1) % 3, three) * 7.0]), three, "multiclass", None)[0]


def test_dotted_numbers_of_three_places_only_stay_decimals(tmp_path: Path) -> None:
    """A column of 1.250, 2.500, ... alone may be weights of three decimal places: only a column that also
    writes plain numbers of up to three digits (758), or several dots in one number, is read as thousands."""
    from search.data import _csv_layout, _csv_numbers

    path = tmp_path / "w.csv"
    path.write_text("Gewicht;Menge;label\n" + "".join(f"{1 + i % 5}.{(i * 37) % 1000:03d};{['1.250', '75'][i % 2]};"
                                                      f"{i % 2}\n" for i in range(20)))
    shape = _csv_layout.layout(path, "w.yaml")
    notes: list[str] = []
    frame = _csv_numbers.thousands_dots(shape.read(path), path, shape, notes)
    assert frame["Gewicht"].tolist()[:2] == [1.0, 2.037] and frame["Menge"].tolist()[:2] == [1250, 75]
    assert len(notes) == 1 and "column 'Menge'" in notes[0]


def test_a_rare_label_is_called_a_typo_only_a_key_or_two_off_a_common_one() -> None:
    """A class folder 'star' of two images beside 'square' was asked "spelled like class 'square': a typo?"
    (their similarity ratio is 0.6); 'yse', 'Sqaure' and 'Plnat B' are a key or two off theirs."""
    from collections import Counter

    from search.data._checks import rare_near_spellings

    counts = Counter({"square": 45, "circle": 41, "star": 2, "Sqaure": 1, "yes": 12, "yse": 3, "Plant B": 10,
                      "Plnat B": 1, "categroy": 1, "category": 30})
    assert sorted(rare_near_spellings(counts)) == [("Plnat B", "Plant B"), ("Sqaure", "square"),
                                                   ("categroy", "category"), ("yse", "yes")]
