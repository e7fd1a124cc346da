"""Optuna's GridSampler, with the baseline trial counted as the grid point it is.

Optuna gives trial ``n`` grid point ``n`` of a seed-shuffled list. Trial numbers are unique in a shared
storage, so workers that build the list from the same seed never evaluate a point twice, whichever
worker runs which trial. The baseline (trial 0) is enqueued with fixed params and would get no grid
point, so its point would be evaluated a second time later: here that point is moved to the front of
the list and marked as trial 0's.

Near the end of the grid a worker can start a trial while another still runs the last point; Optuna
would then evaluate a running point a second time. Such a surplus trial is marked (user attribute
``SURPLUS_ATTR``), the study is told to stop, and the objective ends it at once without sampling.
"""
from __future__ import annotations

from typing import Any

from optuna.samplers import GridSampler

SURPLUS_ATTR = "grid_covered"


class BaselineFirstGrid(GridSampler):
    def __init__(self, search_space: dict[str, list[Any]], seed: int, first: dict[str, Any] | None) -> None:
        super().__init__(search_space, seed=seed)
        self._baseline_in_grid = False
        if first is not None:
            point = tuple(first.get(name) for name in self._param_names)
            # ``_all_grids`` is private to Optuna 5's GridSampler: the shuffled list grid ids index.
            if point in self._all_grids:
                self._all_grids.remove(point)
                self._all_grids.insert(0, point)
                self._baseline_in_grid = True

    def before_trial(self, study: Any, trial: Any) -> None:
        if self._baseline_in_grid and trial.number == 0 and "grid_id" not in trial.system_attrs:
            study._storage.set_trial_system_attr(trial._trial_id, "search_space", self._search_space)
            study._storage.set_trial_system_attr(trial._trial_id, "grid_id", 0)
            return
        fixed = "grid_id" in trial.system_attrs or "fixed_params" in trial.system_attrs
        if not fixed and trial.number >= self._n_min_trials and not self._unclaimed(study):
            study._storage.set_trial_user_attr(trial._trial_id, SURPLUS_ATTR, True)
            trial.user_attrs[SURPLUS_ATTR] = True  # the running Trial reads this very object
            study.stop()
            return
        super().before_trial(study, trial)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        # Optuna's version reads the trial's grid id, which a surplus or non-grid enqueued trial lacks.
        if "grid_id" in study._storage.get_trial_system_attrs(trial._trial_id):
            super().after_trial(study, trial, state, values)
        elif not self._unclaimed(study):
            study.stop()

    def _unclaimed(self, study: Any) -> set[int]:
        """Grid points no trial has finished or is running (Optuna's own list falls back to running ones)."""
        claimed = {t.system_attrs["grid_id"] for t in study._storage.get_all_trials(study._study_id, deepcopy=False)
                   if "grid_id" in t.system_attrs and (t.state.is_finished() or t.state.name == "RUNNING")}
        return set(range(self._n_min_trials)) - claimed
