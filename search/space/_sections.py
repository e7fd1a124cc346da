"""The space file's fixed sections (study, data, validation, phases), each a strict schema that names the
field it refuses."""
from __future__ import annotations

import re
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# A trial's attribute naming the trial whose seeds it trains with (set on a trial queued again).
SEED_TRIAL_ATTR = "seed_trial"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_switch_for_a_count(cls, value: Any, info: ValidationInfo) -> Any:
        """YAML reads yes/no/on/off as true/false, and pydantic would take true as 1: ``n_trials: yes``."""
        annotation = cls.model_fields[info.field_name].annotation if info.field_name else None
        if isinstance(value, bool) and annotation in (int, float, int | None, float | None):
            raise ValueError("expected a number (YAML reads yes, no, on and off as true and false)")
        return value


Objective = Literal["val_loss", "params", "latency"]


class PhasesSection(_Strict):
    """How the phased workflow shares the budget (search/workflow/phases.py)."""

    capacity: float = Field(0.4, gt=0.0, lt=1.0)  # share of n_trials for phase 1 (capacity, regularizers off)
    # Phase 1 ends early once a trial clearly overfits, but not before this many phase-1 trials completed.
    min_trials: int = Field(3, ge=1)
    # Phase 2 holds capacity at phase 1's pick, or searches this many grid steps either side of it.
    neighbourhood: int = Field(0, ge=0, le=100)


class StudySection(_Strict):
    name: str = Field(max_length=100)
    seed: int = Field(0, ge=0, le=2**32 - 1)  # NumPy's and scikit-learn's random_state range
    n_trials: int = Field(20, ge=1)
    sampler: Literal["tpe", "random", "grid", "cmaes", "gp"] = "tpe"
    pruner: Literal["median", "percentile", "hyperband", "successive_halving", "none"] = "median"
    baseline: bool = True
    max_consecutive_failures: int = Field(5, ge=1)
    keep_checkpoints: int = Field(5, ge=1)  # split checkpoints are kept for the best K trials only
    # Across-split pruning (search/studies/pruning.py): "paired" stops a trial that is worse than the best one
    # on every finished split by more than the best trial's split spread.
    split_pruner: Literal["paired", "wilcoxon", "none"] = "paired"
    # The median/percentile rule within a split (search/studies/pruning.py LateMedianRule): complete trials,
    # the baseline not counted, before any curve is judged; and the warm-up as a fraction of the epoch at
    # which complete trials reached their best. Defaults measured by benchmarks/fairness.py.
    # After the budget is spent, ablate the best trial (search/reproduction/ablation.py): its config with its
    # regularizers switched off, all and one at a time, on the same splits and seeds.
    ablation: bool = True
    prune_startup: int = Field(5, ge=0)
    prune_warmup: float = Field(0.5, ge=0.0, le=10.0)
    # Which complete trials a curve is judged against: those with alike regularizers (docs/pruning.md), or all.
    prune_compare: Literal["alike", "all"] = "alike"
    # [val_loss] or [val_loss, params|latency]: a second, minimized objective makes a Pareto study.
    objectives: list[Objective] = Field(default_factory=lambda: list[Objective](["val_loss"]))
    # Set in exported configs: seeds are derived as if this were the trial number, so a replay
    # of trial N in a new study trains with trial N's seeds.
    seed_trial: int | None = Field(None, ge=0)
    # "joint": every setting searched at once. "phased": Chollet's universal workflow in one study: a
    # no-network baseline, capacity with regularizers off until a model overfits, then regularizers.
    workflow: Literal["joint", "phased"] = "joint"
    phases: PhasesSection = PhasesSection()
    # Configs to try first, after the baseline: each a mapping of searched settings to values
    # (search/space/_enqueue.py); the sampler fills in the settings an entry leaves out.
    enqueue: list[Any] = Field(default_factory=list)

    @field_validator("name", mode="before")
    @classmethod
    def _a_name_is_text(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise ValueError(f"a study name is text; quote it (name: '{value}'), as YAML reads it as a number")
        if isinstance(value, str) and not NAME.fullmatch(value):
            raise ValueError("a study name is ASCII letters (a-z, A-Z), digits, '_', '.' and '-', starting with a "
                             "letter or digit: it names folders under --home and is typed on command lines")
        return value

    @field_validator("enqueue", mode="before")
    @classmethod
    def _one_entry_is_a_list_of_one(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @field_validator("workflow")
    @classmethod
    def _phases_need_a_proposing_sampler(cls, value: str, info: ValidationInfo) -> str:
        if value == "phased" and info.data.get("sampler") == "grid":
            raise ValueError("the phased workflow changes what is searched between phases, which a grid "
                             "fixed in advance cannot do; use tpe, random, cmaes or gp, or workflow: joint")
        return value

    @field_validator("objectives")
    @classmethod
    def _loss_first(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if not value or value[0] != "val_loss" or len(value) > 2 or len(set(value)) != len(value):
            raise ValueError("objectives is [val_loss] or [val_loss, params] or [val_loss, latency]")
        if len(value) > 1 and info.data.get("sampler") == "cmaes":
            raise ValueError("the cmaes sampler optimizes one objective; use tpe, random, grid or gp "
                             "with a second objective")
        return value

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def seeds_of(self, trial_number: int, user_attrs: Mapping[str, Any] | None = None) -> int:
        """The trial number a trial's seeds are derived from: ``seed_trial`` where set; for a trial queued
        again after a stop or a crash (its ``user_attrs``), the seeds of the trial it repeats; else its own."""
        if self.seed_trial is not None:
            return self.seed_trial
        carried = (user_attrs or {}).get(SEED_TRIAL_ATTR)
        return carried if isinstance(carried, int) and not isinstance(carried, bool) else trial_number


class DataSection(_Strict):
    source: str
    target: str | None = None
    group: str | None = None
    order: str | None = None
    task: Literal["auto", "classification", "regression"] = "auto"
    # Provided test rows: a second source of the same kind, or a column marking each row test/train.
    test: str | None = None
    split_column: str | None = None
    # CSV columns left out of the features (identifiers, free text, leaky columns), in data.test too.
    drop: list[str] = Field(default_factory=list)
    # None: 0.2 of the rows are held out, unless the test rows are provided (``test``/``split_column``).
    test_size: float | None = Field(None, gt=0.0, lt=1.0)
    preprocess: Literal["standardize", "minmax", "none"] = "standardize"  # "none" for image data
    # Missing feature values (empty cells, NaN): refuse the data, or fill each column per split with the
    # mean or median of that split's training rows (never of its validation or test rows).
    missing: Literal["refuse", "mean", "median"] = "refuse"
    # Text columns of a CSV that hold a category (few distinct values): refused, or one 0/1 column per value.
    categorical: Literal["refuse", "one_hot"] = "refuse"
    # Rows with identical features: drop (one copy kept; all copies when their labels disagree), keep, or
    # refuse the data; auto drops them, except where the features are coarse (search/data/_checks.py, coarse).
    duplicates: Literal["auto", "drop", "keep", "refuse"] = "auto"
    # Image data (pixels arrive in [0, 1]): sklearn:digits / npz:<path> as (n, h, w, c) arrays, and the
    # decoding of images:<dir> folders.
    as_images: bool = False
    image_size: tuple[int, int] | None = None  # [height, width]; every image is resized to it
    color_mode: Literal["rgb", "grayscale", "rgba"] = "rgb"
    skip_bad_images: bool = False

    @model_validator(mode="before")
    @classmethod
    def _images_keep_their_pixels(cls, data: Any) -> Any:
        # Pixels are already in [0, 1]; per-pixel standardization would only be an odd default.
        if isinstance(data, dict) and "preprocess" not in data and (
                data.get("as_images") is True or str(data.get("source", "")).startswith("images:")):
            data = {**data, "preprocess": "none"}
        return data

    @field_validator("source", "test", mode="before")
    @classmethod
    def _kind_from_the_files_suffix(cls, value: Any) -> Any:
        # `source: data.csv` is what a stranger writes first; a kind given but misspelt (`cvs:data.csv`) is still
        # said by name, and C:\\data.csv is a path, not a kind.
        if isinstance(value, str):
            kind, sep, _ = value.partition(":")
            if not sep or len(kind) == 1:
                for suffix, named in ((".csv", "csv"), (".tsv", "csv"), (".txt", "csv"), (".npz", "npz")):
                    if value.lower().endswith(suffix):
                        return f"{named}:{value}"
        return value

    @field_validator("source")
    @classmethod
    def _a_bundled_set_by_its_name(cls, value: str) -> str:
        # Known without reading anything: said by load_space and `search check`, not first by the run.
        from search.data import SKLEARN_SETS

        name = value.partition(":")[2]
        if value.startswith("sklearn:") and name not in SKLEARN_SETS:
            raise ValueError(f"unknown scikit-learn data set; expected sklearn:{' | sklearn:'.join(SKLEARN_SETS)}")
        return value

    @field_validator("target", "group", "order", "split_column", "drop", mode="before")
    @classmethod
    def _column_names_as_written(cls, value: Any, info: ValidationInfo) -> Any:
        # A header of years or codes (2019,2020,2021): YAML reads `target: 2021` as a number, and
        # `drop: id` names one column where a list was meant.
        def name(v: Any) -> Any:
            return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

        if info.field_name == "drop":
            return [name(v) for v in value] if isinstance(value, list) else [name(value)] \
                if isinstance(value, (str, int)) and not isinstance(value, bool) else value
        if info.field_name == "target" and isinstance(value, (list, tuple)) and len(value) > 1:
            raise ValueError("several targets at once (multi-output regression) are not searched: run one study "
                             "per target, leaving the others out with data.drop; expected one column, the one to "
                             "predict")
        if info.field_name == "target" and isinstance(value, (list, tuple)) and len(value) == 1:
            return name(value[0])
        return name(value)

    @field_validator("target", "group", "order", "split_column")
    @classmethod
    def _columns_of_a_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        source = str(info.data.get("source", ""))
        if value is not None and source.startswith("sklearn:"):
            raise ValueError(f"{source} is a bundled data set with its own target and no other columns; "
                             f"data.{info.field_name} names a column of a CSV (or an array of an npz): remove it, "
                             f"or use csv:<file>")
        if value is not None and source.startswith("images:") and info.field_name != "split_column":
            # Ignored there before: a time-series split "in time order" was then the files' name order.
            lacks = {"order": "time order", "group": "groups"}.get(info.field_name or "", "target column")
            raise ValueError(f"{source} is a folder of class folders, with no columns: data.{info.field_name} "
                             f"names a column of a CSV (or an array of an npz), and an image folder has no {lacks} "
                             f"(its files are read in name order): remove it, or save the images as an npz with "
                             f"that array")
        return value

    @field_validator("split_column")
    @classmethod
    def _one_way_to_give_test_rows(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("test") is not None:
            raise ValueError("give the test rows one way: data.test (a source) or data.split_column, not both")
        return value

    @field_validator("test_size", mode="before")
    @classmethod
    def _no_test_rows(cls, value: Any) -> Any:
        # "20%" is how people say a share; pydantic's "unable to parse string as a number" did not say how else.
        if isinstance(value, str) and value.strip().endswith("%"):
            try:
                value = float(value.strip()[:-1]) / 100
            except ValueError:
                raise ValueError("test_size is the share of the rows held out for the test: a number such as 0.2 "
                                 "(or '20%')") from None
        # "expected a number below 1" for test_size: 20 did not say that 20 % is 0.2.
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 1 <= value < 100 and \
                float(value).is_integer():
            raise ValueError(f"test_size is the share of the rows held out for the test, below 1: "
                             f"{value / 100:g} (or '{value:g}%') holds out {value:g} % of them")
        # "expected a number above 0" left a user whose data was already split without the way to say so.
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
            raise ValueError("every study holds test rows out for the one final look (search reproduce); where "
                             "the data is already split, name the test rows' file as data.test (or a column "
                             "that marks them as data.split_column) and leave test_size out")
        return value

    @field_validator("test_size")
    @classmethod
    def _test_size_or_provided_rows(cls, value: float | None, info: ValidationInfo) -> float | None:
        # Refused rather than ignored: someone who wrote test_size expects it to decide the test rows.
        if value is not None and (info.data.get("test") is not None or info.data.get("split_column") is not None):
            raise ValueError("test_size has no effect when the test rows are provided (data.test or "
                             "data.split_column); remove test_size")
        return value

    @property
    def provided_test(self) -> bool:
        return self.test is not None or self.split_column is not None

    @property
    def test_fraction(self) -> float:
        return 0.2 if self.test_size is None else self.test_size

    @field_validator("image_size", mode="before")
    @classmethod
    def _height_and_width(cls, value: Any, info: ValidationInfo) -> Any:
        """``[height, width]`` of whole numbers, for an image folder; a yes/no, a single number or a list of one
        is said plainly (they were taken as 1 pixel, or reported in the words of the schema library)."""
        if value is None:
            return None
        source = str(info.data.get("source", ""))
        if source.partition(":")[0] in ("sklearn", "csv", "npz"):  # an unknown kind is data.source's to name
            raise ValueError(f"image_size resizes the files of an images: folder as they are read; the arrays of "
                             f"{source} keep their size (it would be ignored): remove it")
        if isinstance(value, (list, tuple)) and len(value) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
            return tuple(value)
        square = f" ([{value}, {value}] for a square)" if isinstance(value, int) and not isinstance(value, bool) \
            else ""
        raise ValueError(f"image_size is [height, width], two whole numbers of at least 1{square}")

    @property
    def is_images(self) -> bool:
        return self.as_images or self.source.startswith("images:")


# The validation settings each scheme reads; another one given is ignored, and a warning says so.
SCHEME_READS = {"holdout": {"fraction", "stratify", "shuffle"}, "kfold": {"k", "stratify", "shuffle"},
                 "iterated_kfold": {"k", "repeats", "stratify", "shuffle"},
                 "group_kfold": {"k", "stratify", "shuffle"},
                 "time_series": {"k", "gap", "max_train_size", "val_size", "stratify", "shuffle"}}


class ValidationSection(_Strict):
    scheme: Literal["holdout", "kfold", "iterated_kfold", "group_kfold", "time_series"] = "kfold"
    k: int = Field(5, ge=2)
    repeats: int = Field(3, ge=1)
    fraction: float = Field(0.2, gt=0.0, lt=1.0)
    stratify: bool | None = None  # None: stratify when the task is classification
    shuffle: bool | None = None   # None: shuffle unless the scheme is time_series
    gap: int = Field(0, ge=0)     # time_series: times (rows without data.order) left out before each validation block
    max_train_size: int | None = Field(None, ge=1)  # time_series: a rolling window of at most this many times
    val_size: int | None = Field(None, ge=1)        # time_series: each validation block's times (the horizon)

    def unread(self) -> list[str]:
        """The settings with a value that this scheme does not read (``repeats`` for plain k-fold ...)."""
        reads = SCHEME_READS[self.scheme]
        return [name for name in ("k", "repeats", "fraction", "gap", "max_train_size", "val_size") if name not in reads]

    # Field validators (not one model validator), so that a message names validation.shuffle itself.
    @field_validator("shuffle")
    @classmethod
    def _time_series_never_shuffles(cls, value: bool | None, info: ValidationInfo) -> bool | None:
        if value and info.data.get("scheme") == "time_series":
            raise ValueError("time_series validation keeps time order, so shuffle must be false or absent")
        return value

    @field_validator("stratify")
    @classmethod
    def _time_series_never_stratifies(cls, value: bool | None, info: ValidationInfo) -> bool | None:
        if value and info.data.get("scheme") == "time_series":
            raise ValueError("time_series validation cannot be stratified; remove 'stratify'")
        return value

    @field_validator("shuffle")
    @classmethod
    def _an_ordered_holdout_is_not_stratified(cls, value: bool | None, info: ValidationInfo) -> bool | None:
        if value is False and info.data.get("scheme") == "holdout" and info.data.get("stratify"):
            raise ValueError("a hold-out with shuffle: false validates on the last rows as they are ordered, which "
                             "cannot be stratified; remove 'stratify' or 'shuffle'")
        return value
