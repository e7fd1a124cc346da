"""A running trial's storage writes in batches: seen at once by the trial, all stored before it ends."""
from __future__ import annotations

import gc

import optuna
import pytest

from search.runner import _runtime
from search.studies.writes import TrialWithBatchedWrites


@pytest.fixture
def study(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(storage=f"sqlite:///{tmp_path / 'o.db'}", study_name="w",
                               pruner=optuna.pruners.MedianPruner(n_startup_trials=0, n_warmup_steps=0))


def _stored(study, real):
    return study._storage.get_trial(real._trial_id)


def test_reports_and_attributes_are_seen_at_once_and_stored_by_the_flush(study):
    study.optimize(lambda t: 0.0, n_trials=1)  # a finished trial for the pruner to compare with
    real = study.ask()
    trial = TrialWithBatchedWrites(real, every=3600)
    trial.set_user_attr("worker", "me")  # a trial's first write is made at once: it shows the trial running
    assert _stored(study, real).user_attrs == {"worker": "me"}
    for step in range(50):
        trial.report(10.0 + step, step)
    trial.report(-1.0, 3)  # a step reported twice: the first value stands, as in Optuna
    trial.set_user_attr("splits", [{"split": 0}])
    # The pruner reads the trial's own view, which already has every report; the storage has none yet.
    assert real._cached_frozen_trial.intermediate_values[49] == 59.0
    assert trial.user_attrs["splits"] == [{"split": 0}]
    assert _stored(study, real).intermediate_values == {}
    trial.should_prune()
    trial.flush()
    stored = _stored(study, real)
    assert stored.intermediate_values == {s: 10.0 + s for s in range(50)}
    assert stored.user_attrs == {"worker": "me", "splits": [{"split": 0}]}
    study.tell(real, 1.0)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_attributes_set_again_store_their_last_value_and_overwrite_stored_ones(tmp_path, database):
    import os

    if database == "sqlite":
        url = f"sqlite:///{tmp_path / 'o.db'}"
    else:
        url = os.environ.get("SEARCH_TEST_POSTGRES_URL")
        if not url:
            pytest.skip("SEARCH_TEST_POSTGRES_URL is not set (a PostgreSQL database for the tests)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = f"attrs-{tmp_path.name}"
    study = optuna.create_study(storage=url, study_name=name)
    try:
        real = study.ask()
        trial = TrialWithBatchedWrites(real, every=3600)
        trial.set_user_attr("splits", [])  # the first write is made at once: a stored row to overwrite
        for k in range(3):
            trial.set_user_attr("splits", [{"split": s} for s in range(k + 1)])
            trial.set_user_attr(f"split_{k}", k)
        trial.flush()
        assert _stored(study, real).user_attrs == {"splits": [{"split": 0}, {"split": 1}, {"split": 2}],
                                                   "split_0": 0, "split_1": 1, "split_2": 2}
        study.tell(real, 1.0)
    finally:
        optuna.delete_study(study_name=name, storage=url)


def test_reports_reach_the_storage_while_the_trial_runs(study):
    real = study.ask()
    trial = TrialWithBatchedWrites(real, every=0.0)
    trial.report(1.0, 0)
    trial.report(2.0, 1)
    assert _stored(study, real).intermediate_values == {0: 1.0, 1: 2.0}


def test_a_failed_write_is_raised_by_the_flush(study):
    real = study.ask()
    trial = TrialWithBatchedWrites(real, every=3600)
    trial.set_user_attr("first", 1)
    study.tell(real, 1.0)  # Optuna refuses writes to a finished trial
    trial.set_user_attr("late", 1)
    with pytest.raises(Exception, match="finished|update|state"):
        trial.flush()


def test_a_fixed_trial_writes_in_place():
    trial = TrialWithBatchedWrites(optuna.trial.FixedTrial({"x": 1}))
    trial.set_user_attr("a", 1)
    trial.report(1.0, 0)
    assert trial.user_attrs == {"a": 1} and trial.suggest_int("x", 0, 2) == 1


def test_a_storage_without_sql_gets_each_write_through_the_public_api():
    study = optuna.create_study()  # in memory: no transactions to share
    real = study.ask()
    trial = TrialWithBatchedWrites(real, every=3600)
    for step in range(5):
        trial.report(float(step), step)
    trial.set_user_attr("k", "v")
    trial.flush()
    stored = study._storage.get_trial(real._trial_id)
    assert stored.intermediate_values == {s: float(s) for s in range(5)} and stored.user_attrs == {"k": "v"}


def test_live_objects_are_set_aside_for_the_run_and_given_back_after():
    before = gc.get_freeze_count()
    with _runtime.live_objects_frozen():
        assert gc.get_freeze_count() > before
    assert gc.get_freeze_count() == before


def test_a_trials_mlflow_run_is_made_off_the_training_thread_and_named_on_the_trial(write_space, home,
                                                                                    monkeypatch):
    import io
    import threading

    from mlflow.tracking import MlflowClient

    from search import api, space as spaces
    from search.runner import session

    made_on = []
    real_create_run = MlflowClient.create_run

    def create_run(self, *args, **kwargs):
        made_on.append((threading.current_thread().name, kwargs.get("tags", {}).get("search.kind")))
        return real_create_run(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "create_run", create_run)
    space_file = write_space({"study": {"name": "offthread", "n_trials": 3}})
    options = session.RunOptions(home=home, quiet=True, threads=1)
    api.run_prepared(session.prepare(spaces.load(space_file)), options, space_file.read_text(), out=io.StringIO())
    trial_runs = [thread for thread, kind in made_on if kind == "trial"]
    assert trial_runs == ["search-tracking"] * 3
    study = optuna.load_study(study_name="offthread", storage=f"sqlite:///{home / 'optuna.db'}")
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    for trial in study.trials:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.data.tags["optuna.trial_number"] == str(trial.number)
        assert run.info.status == "FINISHED"
        assert any(key.startswith("split_0/") for key in run.data.metrics)
