"""``reproduce --verify``: re-run a trial's validation deterministically and compare with what was stored.

Each split is trained again through the same code as the search (``training.train_splits``: fused or
one by one, as the search trained it), with the seed derived from (study seed, trial, split), and with
TensorFlow's kernels as the search ran them: op determinism, which a search does not turn on, picks other
kernels, whose last-bit differences grow over a hundred epochs into a false MISMATCH (|diff| 0.001-0.02
where training the same way gives 0). A difference then comes from the setup (settings, data, rows,
library versions, thread count), not from the check.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TextIO

# A split matches when |loss - stored| <= RELATIVE_TOLERANCE * |stored| + ABSOLUTE_TOLERANCE.
RELATIVE_TOLERANCE = 1e-4
ABSOLUTE_TOLERANCE = 1e-6


@dataclass
class SplitCheck:
    split: int
    stored_loss: float
    loss: float
    stored_epoch: int
    epoch: int
    stored_seed: int | None
    seed: int
    tolerance: float
    tolerance_relative: float = RELATIVE_TOLERANCE

    @property
    def matches(self) -> bool:
        return math.isfinite(self.loss) and abs(self.loss - self.stored_loss) <= self.tolerance

    def line(self) -> str:
        verdict = "match" if self.matches else "MISMATCH"
        seed = "" if self.stored_seed in (None, self.seed) else f" (seed {self.seed}, stored {self.stored_seed})"
        return (f"  split {self.split}: best val_loss {self.loss:.6g} at epoch {self.epoch}, stored "
                f"{self.stored_loss:.6g} at epoch {self.stored_epoch}, |diff| {abs(self.loss - self.stored_loss):.2g} "
                f"(tolerance {self.tolerance:.2g}): {verdict}{seed}")


def tolerance_text(relative: float = RELATIVE_TOLERANCE) -> str:
    return f"|loss - stored| <= {relative:g} x |stored| + {ABSOLUTE_TOLERANCE:g}"


def run(space: Any, settings: dict[str, dict[str, Any]], dataset: Any, splits: Sequence[Any],
        stored: Sequence[dict[str, Any]], seed_trial: int, relative: float = RELATIVE_TOLERANCE,
        keep: Callable[[int, Any], None] | None = None) -> list[SplitCheck]:
    """Train every stored split again (together, when the search fused them); ``keep(split, model)`` sees each."""
    from search.runner import training

    checks = []
    chosen = [splits[record["split"]] for record in stored]
    seeds = [training.derive_seed(space.study.seed, seed_trial, split.index) for split in chosen]
    trained = training.train_splits(space, settings, dataset, chosen, seeds)
    for record, split, seed, (model, result) in zip(stored, chosen, seeds, trained):
        stored_loss = float(record["best_val_loss"])
        checks.append(SplitCheck(split.index, stored_loss, result.best_val_loss, int(record["best_epoch"]),
                                 result.best_epoch, record.get("seed"), seed,
                                 relative * abs(stored_loss) + ABSOLUTE_TOLERANCE, relative))
        if keep is not None:
            keep(split.index, model)
    return checks


def say(checks: list[Any], relative: float, trial: int, out: TextIO) -> None:
    """The checks, printed before anything looks at the test rows; a mismatch stops there."""
    from search.errors import VerifyMismatch

    print(f"  verify (trained as the search trained it, stored seeds; match when {tolerance_text(relative)}):",
          file=out)
    for check in checks:
        print(check.line(), file=out)
    wrong = [c for c in checks if not c.matches]
    if not wrong:
        print("  verify: every split matches", file=out)
        return
    raise VerifyMismatch(f"MISMATCH: trial {trial}'s validation, run again as the search ran it, does not give "
                         f"the stored losses ({len(wrong)} of {len(checks)} splits, split {wrong[0].split} first: "
                         f"{wrong[0].loss:.6g} against {wrong[0].stored_loss:.6g}): the setup differs from the "
                         f"search's (settings, data, library versions or thread count). The test rows were not "
                         f"looked at and nothing was logged; find the difference, or run reproduce without --verify "
                         f"to judge the config as it is now", field="--verify")
