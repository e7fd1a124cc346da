"""A trial's split models as a user takes them: raw rows in, each split's own scaler in front."""
from __future__ import annotations

from typing import TYPE_CHECKING

from search.space import Space

if TYPE_CHECKING:
    import keras
    import optuna


def taking_raw_rows(study: "optuna.Study", config: Space, splits: list[int],
                    models: list["keras.Model"]) -> list["keras.Model"]:
    """Each split model behind the layers of its own split's scaler, fitted again on the split's
    training rows (the same rows, so the same scaler, as long as the data is the study's)."""
    from search import preprocess
    from search.errors import DataError
    from search.reproduction.changes import data_changes
    from search.runner import session

    prepared = session.prepare_rows(config)
    changes = data_changes(study.user_attrs, prepared.attrs())
    if changes:
        raise DataError(f"the data differs from the data study '{study.study_name}' was run on ("
                        + "; ".join(changes) + "), so its split scalers cannot be fitted again: restore the data, "
                        "or pass scaled_input=True for the models as trained", field="data.source")
    ds, data = prepared.dataset, config.data
    ds.follow_study(study.user_attrs)
    scalers = [preprocess.fit(data.preprocess, ds.X[prepared.splits[k].train], data.missing, ds.one_hot_columns,
                              ds.as_is_columns) for k in splits]
    return [preprocess.taking_raw_rows(model, scaler, ds.input_shape, f"split_{k}")
            for k, model, scaler in zip(splits, models, scalers)]
