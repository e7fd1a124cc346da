"""How many epochs should `search reproduce`'s final model train? The epoch rule against the update rule.

    python benchmarks/epoch_rule.py [--seeds 0 1 2] [--sets breast_cancer wine digits diabetes iris]

For every bundled data set and seed, a one-trial study (a fixed two-layer MLP, 4-fold) runs twice: once
with few epochs and no early stopping, so the splits end still improving ("censored"), and once with many
epochs and early stopping ("stopped"). Its trial is then reproduced twice on the same development rows and
looked at on the same test rows:

- ``epochs``: the shipped rule, the median split's best epoch;
- ``updates``: the earlier rule, as many optimizer updates as the median split made to its best epoch
  (fewer epochs, since all development rows give more updates per epoch).

Prints each case's two test losses and, per regime, in how many cases the epoch rule's is lower and the
mean and median change from the update rule's. Test losses of a benchmark, never of a study being searched.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import statistics
import tempfile

os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

REGIMES = {"censored": {"breast_cancer": 6, "wine": 6, "digits": 4, "diabetes": 6, "iris": 8},
           "stopped": {"breast_cancer": 80, "wine": 80, "digits": 40, "diabetes": 80, "iris": 80}}


def _update_rule(trial: object, splits: list, n_rows: int, batch_size: int) -> int:
    stored = trial.user_attrs["splits"]  # type: ignore[attr-defined]
    steps = [int(s["best_epoch"]) * math.ceil(len(splits[s["split"]].train) / batch_size) for s in stored]
    return max(1, int(math.floor(statistics.median(steps) / math.ceil(n_rows / batch_size) + 0.5)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sets", nargs="+", default=list(REGIMES["censored"]))
    args = parser.parse_args()

    import search
    from search import space as spaces
    from search.runner import session

    results: dict[str, list[float]] = {}
    root = tempfile.mkdtemp(prefix="epoch-rule-")
    print(f"{'case':32s} {'epochs':>6s} {'test loss':>10s} {'updates':>7s} {'test loss':>10s}")
    for regime, caps in REGIMES.items():
        for name in args.sets:
            for seed in args.seeds:
                study = f"{name}-{regime}-{seed}"
                space = {"study": {"name": study, "seed": seed, "n_trials": 1, "ablation": False,
                                   "baseline": False},
                         "data": {"source": f"sklearn:{name}", "test_size": 0.25, "preprocess": "standardize"},
                         "validation": {"scheme": "kfold", "k": 4},
                         "model": {"family": "mlp", "layers": 2, "units": 32, "dropout": 0.1},
                         "train": {"epochs": caps[name], "batch_size": 32, "learning_rate": 0.003,
                                   "early_stopping": 6 if regime == "stopped" else 0}}
                home = os.path.join(root, study)
                with contextlib.redirect_stdout(io.StringIO()):  # the run's table: not this benchmark's output
                    result = search.run(space, home=home, quiet=True, threads=1)
                prepared = session.prepare(spaces.load(space))
                updates = _update_rule(result.study.trials[0], prepared.splits, len(prepared.dev_idx), 32)
                shipped = search.reproduce(study, home=home, out=io.StringIO())
                earlier = search.reproduce(study, home=home, epochs=updates, out=io.StringIO())
                change = (shipped.test_loss - earlier.test_loss) / earlier.test_loss
                results.setdefault(regime, []).append(change)
                print(f"{study:32s} {shipped.epochs:6d} {shipped.test_loss:10.4g} {updates:7d} "
                      f"{earlier.test_loss:10.4g}", flush=True)
    for regime, changes in results.items():
        lower = sum(c < 0 for c in changes)
        print(f"{regime}: epoch rule's test loss lower in {lower} of {len(changes)} cases; change from the update "
              f"rule's: mean {100 * statistics.mean(changes):+.1f} %, median {100 * statistics.median(changes):+.1f} %")


if __name__ == "__main__":
    main()
