"""The one start-up path of a run, shared by the command and :func:`search.run`: the data checks said,
the listeners wired, the run, its summary and what follows a finished budget (the ablation, the phased
workflow's answer)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from search.errors import StudyError
from search.space import Space

if TYPE_CHECKING:
    from search.reproduction.ablation import AblationRow
    from search.runner import session


def announce(prepared: "session.Prepared", quiet: bool = False, out: TextIO | None = None) -> None:
    """What the data checks found, as `search run` and `search check` say it: the warnings (each one
    paragraph) on stderr, the data summary on ``out`` unless ``quiet``."""
    if skipped := prepared.dataset.images_skipped:
        more = f", and {len(skipped) - 5} more (a new study's MLflow run lists them all in skipped_images.txt)" \
            if len(skipped) > 5 else ""
        print(f"note: skipped {len(skipped)} unreadable image(s) (data.skip_bad_images): {', '.join(skipped[:5])}"
              f"{more}", file=sys.stderr)
    summary = prepared.summary
    for warning in summary.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not quiet:
        print(summary.text(), file=out or sys.stdout, flush=True)


def run_prepared(prepared: "session.Prepared", options: "session.RunOptions", space_text: str, *,
                 workers: int = 1, worker_argv: list[str] | None = None, recycle_after: int = 0,
                 out: TextIO | None = None, progress: TextIO | None = None) -> "session.RunOutcome":
    """The one start-up path of a run, in one process or with worker processes: its listeners (MLflow and
    the terminal), the run, then the summary, the stop message and any error the run ended with.

    Raises:
        StudyError: the run stopped on a full disk or on consecutive failures (after the summary).
    """
    from search import models, tracking
    from search.review.display import Progress, format_counts, header_lines, next_steps, summary_table
    from search.review.trial_fit import TrialDiagnosis
    from search.review.verdicts import why_ended
    from search.runner import session, workers as processes
    from search.studies.lifecycle import budget_of, count_finished, default_storage, finished_count, trials_by_state

    from search import stores

    out = out or sys.stdout
    storage_url = options.storage or default_storage(Path(options.home))
    # Both stores are checked before anything is created; a fresh home's schemas are made under one lock.
    stores.check_url(options.tracking_uri or tracking.default_tracking_uri(Path(options.home)), "--tracking-uri",
                     stores.TRACKING)
    storage, tracker = session.open_storage(options, also=lambda: tracking.make_tracker(prepared, options, space_text))
    budget = budget_of(prepared.space)
    plan = None
    if options.worker_index == 0 and not options.quiet:
        def plan(study: Any) -> list[str]:
            return header_lines(prepared, options, storage_url, tracker.uri, finished_count(study), budget)
    # The diagnosis first: the trial's fit is its Optuna record's, whatever becomes of MLflow, which reads it too.
    listeners: list[Any] = [TrialDiagnosis.of(prepared), tracker,
                            Progress(budget, stream=progress, quiet=options.quiet, header=plan)]
    phased = None
    if prepared.space.study.workflow == "phased":  # phase 0 once, then each trial's phase as it starts
        from search.workflow.phases import Phased

        phased = Phased(prepared, out, announce=options.worker_index == 0)
        listeners.append(phased)
    if workers > 1 or recycle_after:
        outcome = processes.run_workers(prepared, options, workers, worker_argv or [], listeners,
                                        recycle_after=recycle_after, storage=storage)
    else:
        outcome = session.run(prepared, options, listeners, out=out, storage=storage,
                              space_for=phased.space_for if phased is not None else None)
    if options.worker_index == 0:  # workers leave the summary to the process that started them
        if not outcome.already_done:
            print("\n" + format_counts(trials_by_state(outcome.study), budget), file=out)
            for line in why_ended(outcome.study):
                print(line, file=out)
        print(summary_table(outcome.study), file=out)
        trials = outcome.study.get_trials(deepcopy=False)
        complete = any(t.state.name == "COMPLETE" for t in trials)
        if outcome.stopped_by:
            queued = "; interrupted trials are queued again" if outcome.status == "KILLED" else ""
            print(f"\nstopped by {outcome.stopped_by}{queued}. Continue the study with:\n  {options.continue_command}",
                  file=out)
        elif outcome.error is None and outcome.exit_code == 0:
            done = count_finished(trials)
            limited = done < budget and bool(options.timeout or options.n_trials)
            # A run whose --timeout came before any trial ended (a short one, long start-up) failed at nothing.
            ran = any(t.state.name not in ("WAITING", "RUNNING") for t in trials)
            if not complete and (ran or not limited):
                print("\nno trial completed, so there is nothing to reproduce: the lines above say why. Change the "
                      "settings that fail (or a range that diverges) and run a new study (--study-name), or raise "
                      "study.n_trials to try more of this one", file=out)
                return _raised(outcome)
            if limited:
                # A timeout or --n-trials is a normal end, which left the budget (and the ablation) for later.
                limit = " and ".join(name for name, given in (("--timeout", options.timeout),
                                                              ("--n-trials", options.n_trials)) if given)
                waits = "; the study's ablation waits for the whole budget" if prepared.space.study.ablation else ""
                print(f"\n{done}/{budget} trials finished: this run ended at its {limit}{waits}. Continue the "
                      f"study with:\n  {options.continue_command}", file=out)
            if complete:
                here = models.only_in_this_process(str(prepared.space.model.get("family", "")))
                from search.studies.looks import looks_from_other_studies

                looks = len([look for look in outcome.study.user_attrs.get("test_looks", [])
                             if isinstance(look, dict) and not look.get("rows")]
                            + looks_from_other_studies(outcome.study))
                print("\n" + next_steps(prepared.space.study.name, options, builder_here=here, looks=looks), file=out)
    return _raised(outcome)


def _raised(outcome: "session.RunOutcome") -> "session.RunOutcome":
    if outcome.error is not None:
        raise outcome.error
    return outcome


def ablate_when_done(space: Space, options: Any, out: TextIO | None = None) -> list["AblationRow"] | None:
    """After a finished budget, the picked trial's ablation (``study.ablation``); None when it does not run."""
    from search.reproduction import ablation
    from search.studies import lifecycle as studies
    from search.reproduction import targets
    from search.tracking import default_tracking_uri

    if not space.study.ablation:
        return None
    study = targets.load_study(options.storage or studies.default_storage(Path(options.home)), space.study.name)
    if studies.finished_count(study) < studies.budget_of(space):
        return None  # stopped early: the ablation waits for the finished search
    try:
        picked = studies.pick_trial(study, "auto")  # a two-objective study's one_se pick, as reproduce takes
    except StudyError:
        return None
    done, rows = ablation.stored_rows(study)
    if done == picked.number:
        return rows
    uri = options.tracking_uri or default_tracking_uri(Path(options.home))
    resolved, _ = targets.trial_config(study, picked, uri)
    return ablation.run(study, picked, resolved, options, out=out)


def workflow_answer(space: Space, options: Any) -> None:
    """The phased workflow's answer in its own words (search/reproduction/workflow_answer.py), after a run."""
    from search.reproduction import targets, workflow_answer as answer
    from search.studies import lifecycle as studies

    if space.study.workflow == "phased":
        study = targets.load_study(options.storage or studies.default_storage(Path(options.home)), space.study.name)
        answer.report_run(study, options)
