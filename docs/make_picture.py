"""Make the README's picture and sample output: a small iris study, run as a user would run it.

    python docs/make_picture.py        # writes docs/images/before_after.png and docs/images/sample-run.txt

About a minute on 2 CPU cores; needs nothing but this package (no network).
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SPACE = {
    "study": {"name": "iris-demo", "seed": 0, "n_trials": 6, "ablation": False},
    "data": {"source": "sklearn:iris", "test_size": 0.2},
    "validation": {"scheme": "kfold", "k": 3},
    "model": {"family": "mlp", "layers": 1, "units": 16, "dropout": {"float": [0.0, 0.5]},
              "l2": {"float": [1.0e-5, 1.0e-2], "log": True, "or_off": True}},
    "train": {"epochs": 40, "batch_size": 16, "early_stopping": 5,
              "learning_rate": {"float": [1.0e-3, 5.0e-2], "log": True, "default": 1.0e-3}},
}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        space, home = Path(tmp) / "iris-demo.yaml", Path(tmp) / "mlruns"
        space.write_text(yaml.safe_dump(SPACE, sort_keys=False))
        run = subprocess.run([sys.executable, "-m", "search", "run", str(space), "--home", str(home)],
                             capture_output=True, text=True, check=True)
        (HERE / "images" / "sample-run.txt").write_text(
            (run.stderr + run.stdout).replace(tmp, "/tmp/demo"), encoding="utf-8")
        import optuna

        from search import review

        study = optuna.load_study(study_name="iris-demo", storage=f"sqlite:///{home / 'optuna.db'}")
        result = review.build(study.get_trials(), "iris-demo", reference=study.user_attrs.get(review.REFERENCE_ATTR))
        (HERE / "images" / "before_after.png").write_bytes(result.figures["before_after"])


if __name__ == "__main__":
    main()
