"""Search efficiency: spaces/digits_mlp.yaml under the same wall-clock budget, pruning on and off.

    python benchmarks/efficiency.py [--budget 600] [--seeds 0 1 2] [--threads 2]

For every seed, two fresh studies with that seed run for ``--budget`` seconds each (the arms alternate,
so machine load drifts equally on both): "off" with ``pruner: none, split_pruner: none``, "on" with the
space file's pruner and the paired across-split rule. Both log to MLflow and keep checkpoints exactly as
``search run`` does. Counted per arm: trials finished (complete or pruned) before the deadline, and the
lowest mean validation loss of a complete trial finished before it. Target: on/off trials >= 2 with a
best value no worse (mean over seeds).
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]


def run_arm(space_path: Path, seed: int, pruning: bool, budget: float, threads: int | None) -> dict:
    from search import api, space as spaces
    from search.runner import session

    name = f"eff-{'on' if pruning else 'off'}-{seed}"
    space = spaces.load(space_path, study_name=name)
    study_cfg = space.study.model_copy(update={"seed": seed, "n_trials": 100_000})
    if not pruning:
        study_cfg = study_cfg.model_copy(update={"pruner": "none", "split_pruner": "none"})
    space = space.model_copy(update={"study": study_cfg})
    space._path = space_path
    prepared = session.prepare(space)
    home = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    start = time.time()
    study = api.run_prepared(prepared, session.RunOptions(home=home, timeout=budget, threads=threads, quiet=True),
                             space_path.read_text(), out=io.StringIO()).study
    deadline = start + budget
    done = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED") and t.datetime_complete
            and t.datetime_complete.timestamp() <= deadline]
    complete = [t.value for t in done if t.state.name == "COMPLETE"]
    return {"finished": len(done), "pruned": sum(t.state.name == "PRUNED" for t in done),
            "best": min(complete) if complete else float("nan"), "wall": time.time() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", type=Path, default=ROOT / "spaces" / "digits_mlp.yaml")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds per arm and seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))

    rows = []
    for i, seed in enumerate(args.seeds):
        order = (False, True) if i % 2 == 0 else (True, False)
        result = {p: run_arm(args.space, seed, p, args.budget, args.threads) for p in order}
        rows.append((seed, result[False], result[True]))
        off, on = result[False], result[True]
        print(f"seed {seed}: off {off['finished']:3d} trials, best {off['best']:.4f} | on {on['finished']:3d} "
              f"trials ({on['pruned']} pruned), best {on['best']:.4f} | "
              f"trials x{on['finished'] / max(off['finished'], 1):.2f}",
              flush=True)
    off_n = statistics.mean(r[1]["finished"] for r in rows)
    on_n = statistics.mean(r[2]["finished"] for r in rows)
    off_b = statistics.mean(r[1]["best"] for r in rows)
    on_b = statistics.mean(r[2]["best"] for r in rows)
    print(f"\nbudget {args.budget:.0f} s per arm, seeds {args.seeds}")
    print(f"mean finished trials: off {off_n:.1f}, on {on_n:.1f}  → ratio {on_n / off_n:.2f} (target >= 2)")
    print(f"mean best val_loss:   off {off_b:.4f}, on {on_b:.4f}  → {'no worse' if on_b <= off_b else 'WORSE'} "
          f"(target: no worse)")


if __name__ == "__main__":
    main()
