"""What a run is about to train on, said before it starts and stored with the study and its MLflow run."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# A summary line of 500 classes ran to 5,000 characters; the first ones say what the classes look like.
_CLASSES_SHOWN = 30


@dataclass
class DataSummary:
    source: str
    rows_read: int                         # before any cleaning, test rows included
    dropped: dict[str, int]                # rows left out, by reason
    rows: int                              # after cleaning
    features: int
    input_shape: list[int]
    task: str
    dev_rows: int
    test_rows: int
    test_plan: str                         # how the test rows were chosen
    split_plan: str                        # the validation splits of the development rows
    classes: dict[str, list[int]] = field(default_factory=dict)   # class → [development, test] rows
    labels: list[Any] = field(default_factory=list)  # the class labels as read (0, 'yes', 2.5), in output order
    target: dict[str, float] = field(default_factory=dict)        # regression: min, max, mean
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)  # a table's columns, in the model's order
    set_apart: list[str] = field(default_factory=list)      # columns read but not features (data.order, data.group)
    split_times: list[str] = field(default_factory=list)    # with data.order: each split's times
    test_read: int = 0                     # of rows_read, those of data.test's file (or split_column's test rows)
    split_column: str = ""                 # the column that marks the test rows of the one file, if any

    @classmethod
    def of(cls, prepared: Any) -> "DataSummary":
        space, ds = prepared.space, prepared.dataset
        dev, test = prepared.dev_idx, prepared.test_idx
        classes: dict[str, list[int]] = {}
        labels: list[Any] = []
        target: dict[str, float] = {}
        if ds.is_classification:
            n_dev = np.bincount(ds.y[dev], minlength=len(ds.classes))
            n_test = np.bincount(ds.y[test], minlength=len(ds.classes))
            classes = {str(c): [int(a), int(b)] for c, a, b in zip(ds.classes, n_dev, n_test)}
            labels = ds.labels
        else:
            target = {"min": float(ds.y.min()), "max": float(ds.y.max()), "mean": float(ds.y.mean())}
        return cls(source=ds.source, rows_read=ds.rows_read or len(ds.X), dropped=dict(ds.dropped), rows=len(ds.X),
                   features=int(np.prod(ds.input_shape)), input_shape=list(ds.input_shape), task=ds.task,
                   dev_rows=len(dev), test_rows=len(test), test_plan=_test_plan(space, ds),
                   split_plan=_split_plan(space, prepared.splits), classes=classes, labels=labels, target=target,
                   warnings=list(ds.warnings), notes=list(ds.notes), feature_names=list(ds.feature_names or []),
                   set_apart=[f"'{column}' (data.{key})" for key, column in
                              (("order", space.data.order), ("group", space.data.group)) if column],
                   split_times=_split_times(ds, prepared.splits, test), test_read=ds.test_rows_read,
                   split_column=space.data.split_column or "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _read_from(self) -> str:
        # With data.test the count is of both files: 700 read beside "data: csv:train.csv" of 560 rows.
        if not self.test_read:
            return ""
        if self.split_column:  # one file, its test rows marked: no data.test was read
            return (f" ({self.rows_read - self.test_read} development, {self.test_read} test by data.split_column "
                    f"'{self.split_column}')")
        return f" ({self.rows_read - self.test_read} from {self.source}, {self.test_read} from data.test)"

    def lines(self) -> list[str]:
        dropped = ", ".join(f"{n} {why}" for why, n in self.dropped.items()) or "none"
        shape = "×".join(map(str, self.input_shape))
        out = [f"data: {self.source}",
               f"  rows: {self.rows_read} read{self._read_from()}, {self.rows_read - self.rows} dropped ({dropped}), "
               f"{self.rows} kept",
               f"  features: {self.features}" + (f" (shape {shape})" if len(self.input_shape) > 1 else "")
               + _names(self.feature_names) + (f"; read but not features: {', '.join(self.set_apart)}"
                                               if self.set_apart else ""),
               f"  task: {self.task}"]
        if self.classes:
            shown = list(self.classes.items())[:_CLASSES_SHOWN]
            more = len(self.classes) - len(shown)
            out.append(f"  classes ({len(self.classes)}, development/test rows): "
                       + ", ".join(f"{_label(c)} {a}/{b}" for c, a, b in ((c, *n) for c, n in shown))
                       + (f", ... and {more} more" if more else ""))
        else:
            out.append(f"  target: min {self.target['min']:.4g}, max {self.target['max']:.4g}, "
                       f"mean {self.target['mean']:.4g}")
        out += [f"  test rows: {self.test_rows} ({self.test_plan}); development rows: {self.dev_rows}",
                f"  splits: {self.split_plan}"]
        out += [f"    {line}" for line in self.split_times]
        out += [f"  note: {n}" for n in self.notes]
        return out

    def text(self) -> str:
        return "\n".join(self.lines())


def _test_plan(space: Any, ds: Any) -> str:
    d = space.data
    if ds.test_mask is not None:
        return f"provided by {ds.test_source}; test_size does not apply"
    in_time = space.validation.scheme == "time_series" or ds.has_order
    how = ("the last rows in time order" if in_time
           else "whole groups" if ds.groups is not None
           else "stratified by class" if ds.is_classification else "random")
    return f"held out: test_size {d.test_fraction:g}, {how}" + ("" if in_time else f", seed {space.study.seed}")


def _split_plan(space: Any, plan: list[Any]) -> str:
    v = space.validation
    train = sorted(len(s.train) for s in plan)
    val = sorted(len(s.val) for s in plan)
    rows = (f"{train[0]}" if train[0] == train[-1] else f"{train[0]}–{train[-1]}") + " train / " + \
           (f"{val[0]}" if val[0] == val[-1] else f"{val[0]}–{val[-1]}") + " validation rows each"
    return f"{v.scheme}, {len(plan)} split(s), {rows}"


# A plan of 50 time-series splits would fill a screen; the first and the last say how the blocks move.
_SPLIT_TIMES_SHOWN = 6


def _split_times(ds: Any, plan: list[Any], test: Any) -> list[str]:
    """With data.order, each split's training and validation times, first to last, and the test rows':
    that validation comes after training, and how far after, is then seen rather than trusted."""
    if ds.periods is None or not ds.times:
        return []

    def span(rows: Any) -> str:
        if not len(rows):
            return "none"
        ranks = ds.periods[rows]
        # data.test's rows share one rank above the source's times; their own first and last times stand there.
        test_times = ds.test_times or ["data.test", "data.test"]
        first, last = (ds.times[r] if r < len(ds.times) else test_times[end] for end, r in
                       enumerate((ranks.min(), ranks.max())))
        return first if first == last else f"{first} to {last}"

    shown = plan if len(plan) <= _SPLIT_TIMES_SHOWN else [*plan[:_SPLIT_TIMES_SHOWN - 1], plan[-1]]
    out = [f"split {s.index}: train {span(s.train)}, validation {span(s.val)}" for s in shown]
    if len(plan) > len(shown):
        out.insert(-1, f"... {len(plan) - len(shown)} more")
    return out + ([f"test rows: {span(test)}"] if len(test) else [])


def _names(names: list[str], shown: int = 8) -> str:
    """The first feature columns by name: a count alone hid which columns the model takes."""
    if not names:
        return ""
    return " (" + ", ".join(names[:shown]) + (f", ... {len(names) - shown} more" if len(names) > shown else "") + ")"


def _label(name: Any) -> str:
    """A class as printed: quoted where plain text would hide what tells it apart (' yes' beside 'yes')."""
    text = str(name)
    return repr(text) if not text or text != text.strip() or not text.isprintable() or "," in text else text
