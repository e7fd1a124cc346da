"""Continuing a study with an edited space file, and files the commands write: refused where the study or the
user's files would suffer, named by the setting that changed."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli


@pytest.fixture
def study(write_space, home):
    path = write_space({"study": {"name": "kept", "n_trials": 1},
                        "train": {"epochs": 1, "optimizer": {"choice": ["adam", "sgd"]}}})
    assert run_cli("run", path, "--home", home, "--quiet") == 0
    return path


@pytest.mark.parametrize(("edit", "field", "words"), [
    ({"train": {"optimizer": {"choice": ["adam", "sgd", "rmsprop"]}}}, "train.optimizer",
     "searched train.optimizer as {choice: ['adam', 'sgd']}, and this file searches it as {choice: ['adam', 'sgd', "
     "'rmsprop']}"),
    ({"model": {"dropout": {"choice": [0.0, 0.3]}}}, "model.dropout", "Optuna cannot continue a setting whose kind"),
    ({"validation": {"k": 2}}, "validation.k", "other split rows: validation.k was 3, now 2"),
    ({"study": {"seed": 7}}, "study.seed", "other test rows: study.seed was 0, now 7"),
    # k of the k-fold it was is no setting of the hold-out it is now: "validation.k was 3, now 5" was said too.
    ({"validation": {"scheme": "holdout", "k": 5}}, "validation.scheme",
     "other split rows: validation.scheme was kfold, now holdout; its trials"),
    # A key the first file did not write: it had been blamed on the data ("restore the original data").
    ({"validation": {"stratify": False}}, "validation.stratify",
     "other split rows: validation.stratify was unset (its default), now False"),
])
def test_an_edit_optuna_or_the_splits_cannot_continue_is_refused_before_any_trial(study, write_space, home, capsys,
                                                                                 edit, field, words):
    import optuna

    overrides = {"study": {"name": "kept", "n_trials": 3, **edit.get("study", {})},
                 "train": {"epochs": 1, "optimizer": {"choice": ["adam", "sgd"]}, **edit.get("train", {})},
                 **{k: v for k, v in edit.items() if k not in ("study", "train")}}
    path = write_space(overrides, name="edited.yaml")
    capsys.readouterr()
    for command in ("check", "run"):
        assert run_cli(command, path, "--home", home) == 2
        err = capsys.readouterr().err
        assert f"field '{field}'" in err and words in err and "Traceback" not in err
        assert "validation.k was" not in err or edit.get("validation", {}).get("scheme") != "holdout"
    trials = optuna.load_study(study_name="kept", storage=f"sqlite:///{home / 'optuna.db'}").trials
    assert [t.state.name for t in trials] == ["COMPLETE"]  # no failed trial left behind


def test_a_changed_preprocess_is_warned_and_a_range_may_change(study, write_space, home, capsys):
    path = write_space({"study": {"name": "kept", "n_trials": 2}, "data": {"preprocess": "minmax"},
                        "model": {"dropout": {"float": [0.0, 0.6]}},
                        "train": {"epochs": 1, "optimizer": {"choice": ["adam", "sgd"]}}}, name="edited.yaml")
    assert run_cli("run", path, "--home", home, "--quiet") == 0
    err = capsys.readouterr().err
    assert "data.preprocess: standardize -> minmax" in err and "model.dropout" in err
    # A budget lowered below the finished trials: "already has its 1 finished trials" was said of 2.
    lowered = write_space({"study": {"name": "kept", "n_trials": 1}, "data": {"preprocess": "minmax"},
                           "model": {"dropout": {"float": [0.0, 0.6]}},
                           "train": {"epochs": 1, "optimizer": {"choice": ["adam", "sgd"]}}}, name="lowered.yaml")
    assert run_cli("run", lowered, "--home", home, "--quiet") == 0
    assert "already has 2 finished trials, more than study.n_trials (1) asks for; raise study.n_trials above 2" \
        in capsys.readouterr().out


def test_export_and_report_never_replace_a_file_they_did_not_write(study, home, tmp_path, capsys):
    mine = tmp_path / "notes.yaml"
    mine.write_text("my own notes\n")
    assert run_cli("best", "kept", "--home", home, "--export", mine) == 2
    assert run_cli("report", "kept", "--home", home, "--out", mine) == 2
    assert mine.read_text() == "my own notes\n"
    assert "exists and is not" in capsys.readouterr().err
    exported, page = tmp_path / "best.yaml", tmp_path / "kept.html"
    for _ in range(2):  # their own files they write again
        assert run_cli("best", "kept", "--home", home, "--export", exported) == 0
        assert run_cli("report", "kept", "--home", home, "--out", page) == 0


def test_columns_named_for_a_bundled_data_set_and_a_search_of_nothing_are_said(write_space, home, capsys):
    path = write_space({"data": {"group": "g"}, "validation": {"scheme": "group_kfold"}})
    assert run_cli("check", path, "--home", home) == 2
    assert "field 'data.group': sklearn:iris is a bundled data set" in capsys.readouterr().err
    path = write_space({"study": {"n_trials": 3}, "model": {"dropout": 0.1},
                        "validation": {"scheme": "time_series", "k": 2}})
    assert run_cli("check", path, "--home", home) == 0
    err = capsys.readouterr().err
    assert "nothing is searched" in err and "time_series without data.order" in err


def test_a_trial_is_rebuilt_from_the_space_it_ran_with_after_an_edit(study, write_space, home, tmp_path):
    """Without the trial's MLflow record, its config came from the latest file: an edited fixed learning rate
    and preprocessing were exported (and reproduced, and a test look spent) as the trial's own."""
    import optuna

    from search.reproduction import targets

    write_space({"study": {"name": "kept", "n_trials": 2}, "data": {"preprocess": "minmax"},
                 "train": {"epochs": 1, "learning_rate": 0.005, "optimizer": {"choice": ["adam", "sgd"]}}})
    assert run_cli("run", study, "--home", home, "--quiet") == 0
    stored = optuna.load_study(study_name="kept", storage=f"sqlite:///{home / 'optuna.db'}")
    first, second = stored.trials[0], stored.trials[1]
    config, origin = targets.trial_config(stored, first, None)  # no tracking store: rebuilt from the study
    assert "as trial 0 ran with it" in origin
    assert config.data.preprocess == "standardize" and config.train["learning_rate"] == 0.01
    config, _ = targets.trial_config(stored, second, None)
    assert config.data.preprocess == "minmax" and config.train["learning_rate"] == 0.005
    # MLflow's parent run keeps its first params: it says so, and keeps each version by the digest that
    # each trial's run names (it held the first version's params and space.yaml beside the latest note).
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    parent = client.get_run(stored.user_attrs["mlflow_parent_run_id"])
    digests = [t.user_attrs["space_digest"] for t in (first, second)]
    assert digests[0] != digests[1] and parent.data.tags["search.space_versions"] == ",".join(digests)
    assert parent.data.tags["search.space_digest"] == digests[0] and parent.data.params["data.preprocess"] == \
        "standardize"
    assert "edited between runs (2 versions)" in parent.data.tags["search.space_edited"]
    kept = {a.path for a in client.list_artifacts(parent.info.run_id, "space_versions")}
    assert kept == {f"space_versions/{d}.yaml" for d in digests}
    latest = client.download_artifacts(parent.info.run_id, f"space_versions/{digests[1]}.yaml", str(tmp_path))
    assert "minmax" in Path(latest).read_text() and parent.data.tags["version.search"]
    for trial, digest in zip((first, second), digests):
        assert client.get_run(trial.user_attrs["mlflow_run_id"]).data.tags["search.space_digest"] == digest


def test_a_tracking_store_without_the_studys_runs_is_said_when_the_study_goes_on(study, write_space, home, capsys):
    """The MLflow store was removed (or another one given): the next run made a new one and a new parent run
    without a word, and the UI showed one trial of eleven."""
    write_space({"study": {"name": "kept", "n_trials": 2},
                 "train": {"epochs": 1, "optimizer": {"choice": ["adam", "sgd"]}}})
    capsys.readouterr()
    # Another store than the one the study's runs are in: what a deleted mlflow.db gives the next run.
    assert run_cli("run", study, "--home", home, "--tracking-uri", f"sqlite:///{home / 'fresh.db'}") == 0
    said = capsys.readouterr()
    assert "warning: study 'kept' recorded its MLflow runs under parent run" in said.err
    assert "a new parent run is made there, and the 1 earlier trial(s) are not in it" in said.err


def test_a_study_read_with_the_old_duplicates_default_is_told_to_set_it_to_continue(tmp_path):
    """Made when data.duplicates defaulted to drop, a study of coarse features was refused as "different data"
    once the default became auto, which keeps those copies: the same file, read another way."""
    import numpy as np
    import optuna
    import pandas as pd

    from search import space as spaces
    from search.runner import session
    from search.studies._continuing import ContinuationRefused, check_continuable

    rng = np.random.default_rng(0)  # 150 distinct rows, and 30 feature rows each twice with both labels
    rows = pd.DataFrame({"a": rng.normal(size=180), "b": rng.normal(size=180), "label": np.arange(180) % 2})
    pairs = rows.iloc[150:].assign(label=lambda f: 1 - f["label"])
    pd.concat([rows, pairs]).to_csv(tmp_path / "coarse.csv", index=False)

    def space(**data):
        return spaces.validate({"study": {"name": "coarse"}, "data": {"source": f"csv:{tmp_path / 'coarse.csv'}",
                                                                     "target": "label", **data}},
                               source=str(tmp_path / "space.yaml"))

    made = session.prepare_rows(space(duplicates="drop"))  # what the default did then
    study = optuna.create_study()
    for key, value in made.attrs().items():
        study.set_user_attr(key, value)
    now = space()
    with pytest.raises(ContinuationRefused) as refused:
        check_continuable(study, now, session.prepare_rows(now).attrs())
    assert refused.value.field == "data.duplicates" and "set data.duplicates: drop to continue" in str(refused.value)
    check_continuable(study, space(duplicates="drop"), made.attrs())  # as it says: continued


def test_the_same_file_read_otherwise_is_refused_naming_the_setting(tmp_path):
    """data.duplicates: keep, or a column added to data.drop, between runs: refused as "different data" under
    data.source, though the file was the same."""
    import optuna

    from search import space as spaces
    from search.runner import session
    from search.studies._continuing import ContinuationRefused, check_continuable

    def space(**data):
        return spaces.validate({"study": {"name": "read"}, "data": {"source": "sklearn:iris", **data}},
                               source=str(tmp_path / "space.yaml"))

    made = space(duplicates="keep")
    study = optuna.create_study()
    for key, value in session.prepare_rows(made).attrs().items():
        study.set_user_attr(key, value)
    study.set_user_attr("space_yaml", made.to_yaml())
    now = space()
    with pytest.raises(ContinuationRefused) as refused:
        check_continuable(study, now, session.prepare_rows(now).attrs())
    assert refused.value.field == "data.duplicates" and "data.duplicates was keep, now auto" in str(refused.value)


def test_a_header_renamed_under_the_same_values_is_refused_naming_the_columns(tmp_path):
    """Two column names swapped in the file (the values left where they were): the study went on without a
    word, its models now reading each column as the other by name."""
    import numpy as np
    import optuna
    import pandas as pd

    from search import space as spaces
    from search.runner import session
    from search.studies._continuing import ContinuationRefused, check_continuable

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40), "label": np.arange(40) % 2})
    frame.to_csv(tmp_path / "rows.csv", index=False)
    made = spaces.validate({"study": {"name": "names"}, "data": {"source": "csv:rows.csv", "target": "label"}},
                           path=tmp_path / "space.yaml")
    study = optuna.create_study()
    for key, value in session.prepare_rows(made).attrs().items():
        study.set_user_attr(key, value)
    study.set_user_attr("space_yaml", made.to_yaml())
    check_continuable(study, made, session.prepare_rows(made).attrs())  # the same file goes on
    frame.rename(columns={"a": "b", "b": "a"}).to_csv(tmp_path / "rows.csv", index=False)
    with pytest.raises(ContinuationRefused) as refused:
        check_continuable(study, made, session.prepare_rows(made).attrs())
    assert refused.value.field == "data.source" and "'a' is now 'b', 'b' is now 'a' (their values are the same)" \
        in str(refused.value), str(refused.value)


def test_a_changed_scheme_does_not_name_a_setting_the_old_scheme_never_read():
    """k-fold to iterated k-fold was refused with 'validation.repeats was 3', a value no one had set."""
    from conftest import TINY, merge
    from search import space as spaces
    from search.studies._continuing import _changed_plan

    before = spaces.load(TINY).to_yaml()
    after = spaces.load(merge(TINY, {"validation": {"scheme": "iterated_kfold", "repeats": 2}}))
    assert _changed_plan(before, after) == ["validation.scheme was kfold, now iterated_kfold"]
    assert _changed_plan(after.to_yaml(), spaces.load(merge(TINY, {"validation": {
        "scheme": "iterated_kfold", "repeats": 4}}))) == ["validation.repeats was 2, now 4"]


def test_a_second_file_opening_a_study_before_any_trial_finished_is_warned_about(capsys):
    """Two workers started together with two files (adam and 8 epochs, sgd and 4) said nothing: the change
    was compared only once a trial had finished, and the baseline trained with either file's settings."""
    import optuna

    from conftest import TINY, merge
    from search import space as spaces
    from search.runner.session import RunOptions, note_space

    study = optuna.create_study()
    capsys.readouterr()  # Optuna's own line about the study
    first = spaces.load(merge(TINY, {"train": {"optimizer": "adam", "epochs": 8}}))
    second = spaces.load(merge(TINY, {"train": {"optimizer": "sgd", "epochs": 4}}))
    note_space(study, first, RunOptions())
    assert capsys.readouterr().err == ""
    note_space(study, second, RunOptions())
    err = capsys.readouterr().err
    assert "warning: study 'tiny' was opened with other settings, by a worker started with another space file" \
        in err and "train.epochs: 8 -> 4; train.optimizer: adam -> sgd" in err, err
    note_space(study, second, RunOptions(worker_index=2))  # a worker of a parent that said it already
    assert capsys.readouterr().err == ""


def test_looks_at_the_same_data_by_other_studies_are_said_by_run_and_reproduce(write_space, home, capfd):
    """After four looks at a file's test rows, a new study.seed drew other test rows and its reproduce said
    "one look" with no note; a new study name over the same test rows ran without a word."""
    from conftest import merge

    fast = {"study": {"name": "first", "n_trials": 1, "baseline": False, "ablation": False},
            "validation": {"k": 2}, "train": {"epochs": 1}}
    assert run_cli("run", write_space(fast), "--home", home, "--quiet") == 0
    assert run_cli("reproduce", "first", "--home", home) == 0
    capfd.readouterr()
    again = merge(fast, {"study": {"name": "again"}})
    assert run_cli("run", write_space(again, "again.yaml"), "--home", home, "--quiet") == 0
    out, err = capfd.readouterr()
    assert "warning: the test rows of study 'again' were looked at by `search reproduce` of other studies of the " \
           "same data and test rows 1 time(s)" in err and "the next look is look 2" in err, err
    assert "retrain the best config, look at the test rows again (look 2, no unbiased test)" in out, out
    redrawn = merge(fast, {"study": {"name": "redrawn", "seed": 7}})
    assert run_cli("run", write_space(redrawn, "redrawn.yaml"), "--home", home, "--quiet") == 0
    err = capfd.readouterr().err
    assert "warning: the same data was looked at 1 time(s) by `search reproduce` of study 'first', with other " \
           "test rows (another study.seed" in err, err
    assert run_cli("reproduce", "redrawn", "--home", home) == 0
    out = capfd.readouterr().out
    assert "test set (one look)" in out and "note: the same data had 1 earlier look(s) at other test rows, by " \
           "study 'first'" in out, out
