"""The universal workflow as one study (``study.workflow: phased``): beat a baseline, scale up until the
model overfits, then regularize.

Searching capacity and regularization jointly mixes the two: the winner differs from the unregularized
baseline in units, depth and learning rate as much as in dropout, so nobody can say what regularization
bought, and budget goes to regularizing models too small to need it. The phased workflow keeps the order
Chollet's universal workflow prescribes, inside one Optuna study:

- phase 0: the prior and a linear model, no network, on the same splits (search/common_sense.py), stored
  as study attributes: the baseline to beat;
- phase 1: capacity (``Space.capacity``) and optimizer settings, every regularizer at its off value,
  until a trial clearly overfits (the fit rule of search/diagnostics.py, with at least
  ``phases.min_trials`` phase-1 trials complete) or ``phases.capacity`` of the budget is spent;
- phase 2: regularizers (and optimizer settings) with capacity held at phase 1's pick: the smallest
  capacity that clearly overfits, else the best phase-1 trial (or ``phases.neighbourhood`` steps either
  side of it).

Each trial's phase is decided from the stored trials when it starts, so a study stopped mid-phase, or
shared by workers, continues in the right phase; the pick is stored once (``workflow_pick``) so every
later trial agrees on it. Each trial records ``phase`` and ``phase_fixed`` (the values its phase held
fixed), from which its config is rebuilt without MLflow. Optuna's samplers accept a search space that
changes between trials: a setting a phase holds fixed is simply not suggested.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence, TextIO

from search.runner.results import FIXED_ATTR, PHASE_ATTR, TrialListener, TrialOutcome
from search.space import CAPACITY_KEYS, Space, flatten, is_distribution

# Per trial: PHASE_ATTR, 1 or 2; FIXED_ATTR, {dotted name: value} the phase held fixed (runner/results.py).
PICK_ATTR = "workflow_pick"        # per study: phase 1's pick, written once when phase 2 begins
PHASE0_ATTR = "workflow_baseline"  # per study: phase 0's losses (search/common_sense.py)


@dataclass
class Decision:
    phase: int
    fixed: dict[str, Any] = field(default_factory=dict)      # settings held at a value in this phase
    narrowed: dict[str, Any] = field(default_factory=dict)   # capacity searched in a neighbourhood
    pick: dict[str, Any] | None = None                       # newly made: store it and announce it


def searched_capacity(space: Space) -> list[str]:
    leaves = space.leaves()
    return [name for name in space.capacity() if is_distribution(leaves[name])]


def phase1_budget(space: Space) -> int:
    return max(1, round(space.study.phases.capacity * space.study.n_trials))


def regularizers_off(space: Space) -> dict[str, Any]:
    """Phase 1's fixed values: every regularizer that the file searches or sets on, at its off value."""
    leaves = space.leaves()
    return {name: off for name, off in space.regularizers().items()
            if name in leaves and (is_distribution(leaves[name]) or leaves[name] != off)}


def decide(space: Space, trials: Sequence[Any], stored_pick: dict[str, Any] | None,
           current: int | None = None) -> Decision:
    """The phase of the trial numbered ``current`` from the study's other ``trials`` and its stored pick."""
    capacity = searched_capacity(space)
    if not capacity:
        return Decision(2)
    if stored_pick:
        return _phase2(space, stored_pick)
    mine = [t for t in trials if t.number != current and t.user_attrs.get(PHASE_ATTR) == 1]
    finished = [t for t in mine if t.state.name in ("COMPLETE", "PRUNED")]
    # Running phase-1 trials of other workers that started earlier hold a phase-1 slot already.
    running = [t for t in mine if t.state.name == "RUNNING" and (current is None or t.number < current)]
    complete = [t for t in finished if t.state.name == "COMPLETE" and t.values]
    overfit = [t for t in complete if t.user_attrs.get("fit") == "overfit"]
    phases = space.study.phases
    spent = len(finished) + len(running) >= phase1_budget(space)
    if not complete or (not spent and not (overfit and len(complete) >= phases.min_trials)):
        return Decision(1, fixed=regularizers_off(space))
    if overfit:
        chosen = min(overfit, key=lambda t: (t.user_attrs.get("n_params") or math.inf, t.values[0], t.number))
        why = "overfit"
    else:
        chosen = min(complete, key=lambda t: (t.values[0], t.number))
        why = "best"
    values = flatten(space_of_trial(space, chosen).sample(_fixed_trial(chosen)))
    pick = {"trial": chosen.number, "why": why, "capacity": {n: values[n] for n in capacity},
            "value": float(chosen.values[0]), "n_params": chosen.user_attrs.get("n_params"),
            "onset": chosen.user_attrs.get("overfit_onset"), "phase1_finished": len(finished),
            "phase1_budget": phase1_budget(space)}
    decision = _phase2(space, pick)
    decision.pick = pick
    return decision


def _phase2(space: Space, pick: dict[str, Any]) -> Decision:
    leaves, steps = space.leaves(), space.study.phases.neighbourhood
    decision = Decision(2)
    for name, value in pick["capacity"].items():
        around = _around(leaves.get(name), value, steps)
        if is_distribution(around):
            decision.narrowed[name] = around
        else:
            decision.fixed[name] = value
    return decision


def _around(dist: Any, value: Any, steps: int) -> Any:
    """``steps`` grid steps either side of ``value`` inside ``dist``: a step is ``step`` (or 1) of a linear
    integer range and a factor of 2 of a log one. Float and choice settings stay at ``value``: Optuna
    refuses a changed list of choices for a name it has seen."""
    if not steps or not is_distribution(dist) or "int" not in dist or isinstance(value, bool) or not value:
        return value
    lo, hi = dist["int"]
    if dist.get("log"):
        low, high = max(lo, int(math.floor(value / 2 ** steps))), min(hi, int(math.ceil(value * 2 ** steps)))
        return {"int": [low, high], "log": True} if low < high else value
    step = int(dist.get("step") or 1)
    low, high = max(lo, value - steps * step), min(hi, value + steps * step)
    return {"int": [int(low), int(high)], "step": step} if low < high else value


def phase_space(space: Space, decision: Decision) -> Space:
    """The space a trial of this phase samples from: the file's, with the phase's settings held or narrowed."""
    changes = {**decision.fixed, **decision.narrowed}
    if not changes:
        return space
    data = space.as_data()
    for name, value in changes.items():
        section, _, key = name.partition(".")
        data[section][key] = value
    derived = Space.model_validate(data)
    derived._path = space.path
    return derived


def space_of_trial(space: Space, trial: Any) -> Space:
    """The space a stored trial sampled from, as far as rebuilding its config needs: its phase's fixed values
    (a narrowed capacity is in the trial's parameters)."""
    fixed = trial.user_attrs.get(FIXED_ATTR)
    return phase_space(space, Decision(int(trial.user_attrs.get(PHASE_ATTR, 0)), dict(fixed))) if fixed else space


def _fixed_trial(trial: Any) -> Any:
    import optuna

    return optuna.trial.FixedTrial(trial.params, trial.number)


def settings_text(values: dict[str, Any]) -> str:
    return ", ".join(f"{name.split('.', 1)[1]}={value}" for name, value in values.items())


def pick_text(pick: dict[str, Any]) -> str:
    """Why phase 1 ended and what phase 2 holds, in one paragraph."""
    cap = settings_text(pick["capacity"])
    size = f"; {int(pick['n_params']):,} parameters" if pick.get("n_params") else ""
    if pick["why"] == "overfit":
        onset = f" from epoch {pick['onset']}" if pick.get("onset") else ""
        return (f"phase 1 ends after {pick['phase1_finished']} trial(s): trial {pick['trial']} clearly overfits "
                f"(its validation loss turns up{onset} while its training loss keeps falling), the smallest "
                f"such capacity ({cap}{size}). Phase 2 searches the regularizers at that capacity.")
    return (f"phase 1 ends: its {pick['phase1_budget']} trial(s) are spent and no trial clearly overfit, so the "
            f"capacity may still be too small to need regularizing (widen its ranges to find out). Phase 2 "
            f"searches the regularizers at the best phase-1 trial {pick['trial']}'s capacity ({cap}{size}).")


class Phased(TrialListener):
    """Runs phase 0 once, gives each trial its phase's space, and judges each finished trial's fit.

    The fit (underfit / good / overfit) is also written by the MLflow tracker; it is computed here from the
    trial's own curves so that the phase decision never depends on a side channel being up.
    """

    def __init__(self, prepared: Any, out: TextIO | None = None, announce: bool = True) -> None:
        from search.review.diagnostics import chance_loss, split_chance_losses

        self.prepared, self.space, self.out = prepared, prepared.space, out or sys.stdout
        self.announce = announce  # worker processes leave the opening lines to their parent
        self._started = False
        ds = prepared.dataset
        self.reference = chance_loss(ds.y[prepared.dev_idx], ds.task)
        self.split_references = split_chance_losses(ds.y, ds.task, prepared.splits)

    def on_study_open(self, study: Any) -> None:
        if not self._started:  # told twice by the study's creator; phase 0 and its lines once
            self._started = True
            self.start(study)

    def start(self, study: Any) -> None:
        """Phase 0 (once per study), then say which phase the study is in and why."""
        from search.workflow import common_sense

        stored = study.user_attrs.get(PHASE0_ATTR)
        if stored is None:
            stored = common_sense.losses(self.prepared)
            study.set_user_attr(PHASE0_ATTR, stored)
        if not self.announce:
            return
        self._say(f"phase 0, baseline to beat (no network, same {stored['n_splits']} splits, {stored['loss']} mean "
                  f"over splits): {common_sense.text(stored)}" + (f" ({stored['note']})" if stored.get("note") else ""))
        if not searched_capacity(self.space):
            named = [n.split(".", 1)[1] for n in self.space.capacity()]
            why = (f"{', '.join(named)} {'is' if len(named) == 1 else 'are'} fixed" if named else
                   "a custom builder names its capacity settings with model.capacity, and this file names none"
                   if self.space.is_custom else f"none of {', '.join(CAPACITY_KEYS)} is in the file")
            self._say(f"phase 1 skipped: the space searches no capacity setting ({why}), so every trial is phase "
                      f"2: the regularizers searched with everything else as the file has it.")
        elif (pick := study.user_attrs.get(PICK_ATTR)) is not None:
            self._say(f"phase 2 (continued): regularizers at trial {pick['trial']}'s capacity "
                      f"({settings_text(pick['capacity'])}).")
        else:
            off = ", ".join(n.split(".", 1)[1] for n in regularizers_off(self.space)) or "none in this space"
            budget, least = phase1_budget(self.space), self.space.study.phases.min_trials
            # It can only end early with trials to spare after phases.min_trials have completed.
            length = (f"up to {budget} trial(s), ending early once a trial clearly overfits after at least "
                      f"{least} completed" if least < budget else f"{budget} trial(s)")
            self._say(f"phase 1: capacity ({', '.join(n.split('.', 1)[1] for n in searched_capacity(self.space))}) "
                      f"and optimizer settings with every regularizer off ({off}); {length}.")
        if not any(is_distribution(self.space.leaves()[n]) for n in self.space.regularizers()):
            self._say("note: the space searches no regularizer, so phase 2 tunes the other settings only.")

    def space_for(self, trial: Any) -> Space:
        """The space this trial samples from; records its phase before anything else hears of it."""
        study = trial.study
        decision = decide(self.space, study.get_trials(deepcopy=False), study.user_attrs.get(PICK_ATTR),
                          current=trial.number)
        if decision.pick is not None:
            # Another worker may have written its pick since the trials were read: the first one stands.
            stored = study.user_attrs.get(PICK_ATTR)
            if stored is None:
                study.set_user_attr(PICK_ATTR, decision.pick)
                self._say(pick_text(decision.pick))
            else:
                decision = _phase2(self.space, stored)
        trial.set_user_attr(PHASE_ATTR, decision.phase)
        trial.set_user_attr(FIXED_ATTR, decision.fixed)
        return phase_space(self.space, decision)

    def on_trial_end(self, trial: Any, outcome: TrialOutcome) -> None:
        from search.review import diagnostics

        histories = {s.split: s.history for s in outcome.splits if s.history}
        if not histories:
            return
        early = int(outcome.settings.get("train", {}).get("early_stopping") or 0)
        patience = min(diagnostics.DEFAULT_PATIENCE, early) if early else diagnostics.DEFAULT_PATIENCE
        for key, value in diagnostics.diagnose_trial(histories, self.reference, patience,
                                                     self.split_references).attrs().items():
            trial.set_user_attr(key, value)

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)
