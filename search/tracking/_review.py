"""The tracker's review side: the study's description, each trial's diagnosis and learning curves, and
the study figures, drawn by a helper process (search/review/_drawing.py) and logged from a thread of
their own, so neither a figure nor a study refresh holds up training or a trial's MLflow writes."""
from __future__ import annotations

import logging
import math
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from search import review
from search._redact import redact
from search.review import _drawing as drawing
from search.runner.results import TrialOutcome
from search.space import Space
from search.tracking._later import Later
from search.review.trial_fit import trial_fit
from search.tracking._store import forget_artifact_repo

TRIAL_FIGURE = "figures/learning_curves.png"
# Study figures are redrawn when a better trial arrives or every REFRESH_EVERY finished trials, but
# never so often that drawing them takes more than REVIEW_SHARE of the run's wall time (split among
# the workers of one machine, see make_tracker); the end of a run always redraws them.
REVIEW_SHARE = 0.05
REFRESH_EVERY = 10
# Where more workers than cores keep every core busy, a worker's drawing process can fall behind. With
# this many figures waiting, a trial's end waits for one to be drawn, so the review in MLflow lags by
# minutes, not hours, and the end of a run never waits long for it. A drawing process that stopped
# answering altogether holds up no trial for longer than FIGURES_PATIENCE.
MAX_FIGURES_WAITING = 8
FIGURES_PATIENCE = 60.0
_log = logging.getLogger("search")


class ReviewLogging:
    """Mixed into the MLflow tracker, which owns the attributes annotated here. What is computed and
    drawn lives in search.review; here it only meets MLflow."""

    client: Any
    space: Space
    study_tags: dict[str, Any]
    parent_run_id: str
    reference_loss: float | None
    split_references: dict[int, tuple[float, float]]
    _study: Any

    def _start_review(self) -> None:
        self.review_share, self.refresh_every = REVIEW_SHARE, REFRESH_EVERY
        self.figures = True  # False: no PNGs (`search run --figures off`), the study's tables and notes still
        self._clock_start, self._review_spent, self._review_cost = time.monotonic(), 0.0, 1.0
        self._best_pending, self._since_refresh = False, 0
        # Figures on a thread of their own, so a study refresh (seconds) never holds up a trial's MLflow
        # writes, and drawn in another process, off the training thread's Python lock.
        self._drawing = Later("search-drawing")
        self._drawer = drawing.shared()  # one helper per process, for its every run
        self._latest_trials: Any = None  # the newest trials a study refresh may draw
        self._refresh_queued = False  # a refresh is waiting on the drawing thread
        self._refresh_lock = threading.Lock()  # the writes thread asks, the drawing thread takes

    def _ask_refresh(self, trials: list[Any], new_best: bool) -> None:
        """Count a finished trial toward a study refresh; only the newest trials are worth drawing, so a
        refresh still waiting takes these instead."""
        self._since_refresh += 1
        self._best_pending |= new_best
        with self._refresh_lock:
            self._latest_trials = trials
            if self._refresh_queued:
                return
            self._refresh_queued = True
        self._drawing.submit(self._refresh_latest)

    def _refresh_latest(self) -> None:
        with self._refresh_lock:
            trials, self._latest_trials, self._refresh_queued = self._latest_trials, None, False
        if trials is not None:
            self._maybe_refresh_with(trials)

    def _describe(self, study: Any) -> None:
        lines = review.describe(self.space, self.study_tags)
        study.set_user_attr(review.DESCRIPTION_ATTR, [list(x) for x in lines])
        if self.reference_loss is not None:
            study.set_user_attr(review.REFERENCE_ATTR, self.reference_loss)
        if self.split_references:
            study.set_user_attr(review.REFERENCES_ATTR, {str(k): list(v) for k, v in self.split_references.items()})
        self.client.set_tag(self.parent_run_id, "mlflow.note.content",
                            redact(review.description_markdown(study.study_name, lines))[:50000])

    def note_verdict(self, study: Any) -> None:
        """The study run's description, followed by what the terminal says below its table at the end: a
        reader of the run in MLflow saw the gain over the baseline without its caveats (noise, other settings)."""
        if (text := verdict_note(study)) is not None:
            self.client.set_tag(self.parent_run_id, "mlflow.note.content", text)

    def _diagnose(self, trial: Any, outcome: TrialOutcome) -> Any:
        """The diagnosis the run's own listener made (search/review/trial_fit.py); judged here only where the
        tracker is used without it."""
        from search.review.trial_fit import diagnose

        if outcome.diagnosed:
            return outcome.diagnosis
        return diagnose(trial, outcome, self.reference_loss, self.split_references)

    def _log_trial_figure(self, trial: Any, run_id: str, outcome: TrialOutcome, diagnosis: Any) -> None:
        """Hand the trial's learning-curve figure to the drawing thread: the next trial need not wait for it,
        unless MAX_FIGURES_WAITING figures are already waiting."""
        name = review.trial_label(trial.number, trial.params, bool(trial.user_attrs.get("baseline")))
        histories = {s.split: s.history for s in outcome.splits}
        self._drawing.wait(self._drawing.ticket() + 1 - MAX_FIGURES_WAITING, FIGURES_PATIENCE)
        self._drawing.submit(self._draw_trial_figure, trial.number, run_id, name, histories, diagnosis,
                           trial_fit(outcome, diagnosis))

    def _draw_trial_figure(self, number: int, run_id: str, name: str, histories: dict[int, Any], diagnosis: Any,
                           fit: str) -> None:
        from search.review import figures

        try:
            png = self._drawer.call(figures.learning_curves, histories, diagnosis, name, fit=fit)
            with tempfile.TemporaryDirectory(prefix="search-fig-") as tmp:
                path = Path(tmp) / Path(TRIAL_FIGURE).name
                path.write_bytes(png)
                self.client.log_artifact(run_id, str(path), str(Path(TRIAL_FIGURE).parent))
            forget_artifact_repo(run_id)  # the figure may come after the run closed (and forgot its repository)
        except Exception as exc:  # a figure is never worth a trial
            _log.warning("could not draw trial %s's learning curves: %s", number, redact(exc))

    def _maybe_refresh_with(self, trials: list[Any]) -> None:
        if not (self._best_pending or self._since_refresh >= self.refresh_every):
            return
        elapsed = time.monotonic() - self._clock_start
        if self._review_spent + self._review_cost > self.review_share * elapsed:
            return  # drawing now would cost more than our share of the run: a later trial end will
        self.refresh_study(trials)

    def refresh_study(self, trials: list[Any]) -> None:
        """Redraw the study figures and tables on the parent run, and log the study metrics."""
        from mlflow.entities import Metric, RunTag

        study_name = self._study.study_name if self._study is not None else self.space.study.name
        if ".ablation." in study_name:
            # The variants measure one trial; they are no search: a ranking of them as trials (t003 beside runs
            # named t004 [l2 off]), a "best" and importances over them contradicted the ablation's table, which
            # search/reproduction/ablation.py logs on this run instead.
            return
        started = time.perf_counter()
        try:
            attrs = self._study.user_attrs if self._study is not None else {}
            args = (trials, study_name, attrs.get(review.DESCRIPTION_ATTR, ()))
            kwargs: dict[str, Any] = dict(seed=self.space.study.seed, reference=self.reference_loss,
                                          split_references=self.split_references)
            # Without figures nothing needs matplotlib, nor the helper process that would start for it.
            result = self._drawer.call(review.build, *args, **kwargs) if self.figures else \
                review.build(*args, **kwargs, draw=False)
            with tempfile.TemporaryDirectory(prefix="search-review-") as tmp:
                folder = Path(tmp) / "study"
                folder.mkdir()
                for name, png in result.figures.items():
                    (folder / f"{name}.png").write_bytes(png)
                # Written every time: artifacts are only ever replaced, so an earlier "no importances yet"
                # would otherwise stay beside the figure drawn since.
                (folder / "notes.md").write_text("\n\n".join(result.notes or ["Every study figure is drawn."])
                                                 + "\n", encoding="utf-8")
                (folder / "top_trials.csv").write_text(result.csv(), encoding="utf-8")
                (folder / "top_trials.md").write_text(result.markdown(), encoding="utf-8")
                self.client.log_artifacts(self.parent_run_id, tmp)
            finished = int(result.metrics.get("trials_complete", 0) + result.metrics.get("trials_pruned", 0))
            now = int(time.time() * 1000)
            metrics = [Metric(k, v, now, finished) for k, v in result.metrics.items()
                       if k not in ("best_value", "best_trial") and math.isfinite(v)]
            tags = [RunTag("review.trials", str(finished))]
            if "best_trial" in result.metrics:
                tags.append(RunTag("review.best_trial", str(int(result.metrics["best_trial"]))))
            self.client.log_batch(self.parent_run_id, metrics=metrics, tags=tags)
            self._best_pending, self._since_refresh = False, 0
        except Exception as exc:  # the study goes on without fresh figures
            _log.warning("could not refresh the study figures: %s: %s", type(exc).__name__, redact(exc))
        finally:
            self._review_cost = time.perf_counter() - started
            self._review_spent += self._review_cost


def verdict_note(study: Any) -> str | None:
    """The study run's description with what the search found below it; None where it found nothing to say.
    Written again once the best trial's ablation is stored, whose note it then holds."""
    from search.review.verdicts import verdict

    lines = [list(x) for x in study.user_attrs.get(review.DESCRIPTION_ATTR, ())]
    found = verdict(study)
    if not found:
        return None
    text = review.description_markdown(study.study_name, lines) + "\n\n**What the search found**\n\n" + \
        "\n".join(f"- {line.strip()}" if not line.startswith("  (") else f"  - {line.strip()}" for line in found)
    return redact(text)[:50000]
