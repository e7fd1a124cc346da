"""What the final model that `reproduce` logs takes and gives, said so that it can be used without this package:
its input columns (or image preparation), which class a sigmoid is the probability of, the order of a
softmax's classes; reproduce.json's ``model`` entry, the printed line, and the pyfunc form's output columns."""
from __future__ import annotations

from typing import Any


def model_io(ds: Any, target_name: str | None, missing: str = "refuse", image_size: Any = None) -> dict[str, Any]:
    """What the saved final model takes (raw feature rows, in this column order) and what each output means,
    so that a prediction can be read without this package: which class a sigmoid is the probability of,
    the order of a softmax's classes."""
    if ds.feature_names and getattr(ds, "one_hot", None):
        # The encoder is not in the Keras model: the pyfunc form's loader encodes (tracking/_pyfunc_loader.py).
        inputs: dict[str, Any] = {
            "features": list(ds.feature_names), "one_hot": dict(ds.one_hot),
            "as": "the pyfunc form (mlflow.pyfunc.load_model, mlflow models serve) takes a frame of raw rows as "
                  "read, category columns as text, by column name; the Keras model (final_model.keras, "
                  "mlflow.keras) takes the numeric columns as read and each category column one-hot encoded into "
                  "the 0/1 columns column=value ('one_hot' lists the values; a value it lacks is 0 in every column "
                  "of its category), columns in this order (the scaler and any fill of missing values are in it)"}
    elif ds.feature_names:
        inputs = {"features": list(ds.feature_names), "as": "raw rows (the scaler and any fill of "
                  "missing values are in the model), columns in this order"}
    elif len(ds.input_shape) > 1:
        inputs = {"shape": list(ds.input_shape), "as": _images_taken(ds, image_size)}
    else:
        inputs = {"shape": list(ds.input_shape), "as": "raw rows, columns in the source's order"}
    if "features" in inputs or "shape" in inputs and len(ds.input_shape) == 1:
        inputs["missing"] = (f"filled with the training rows' {missing} (inside the model)" if missing != "refuse"
                             else "none: trained with data.missing: refuse, it has no fill for them, and its pyfunc "
                                  "form refuses a row with one")
    classes = ds.labels
    named = {"target": target_name} if target_name else {}  # a file of rows holding it is scored by `search predict`
    if ds.task == "binary":
        output = {"task": "binary", **named, "classes": classes,
                  "output": f"one value: the probability of class {classes[1]!r} (1 - it is that of {classes[0]!r})"}
    elif ds.task == "multiclass":
        output = {"task": "multiclass", **named, "classes": classes,
                  "output": f"{len(classes)} probabilities, one per class in the order of 'classes'"}
    else:
        output = {"task": "regression", **named,
                  "output": f"one value: the target{f' {target_name!r}' if target_name else ''} in its own units"}
    return {"inputs": inputs, **output}


def _images_taken(ds: Any, image_size: Any = None) -> str:
    """How the final model's images must be prepared: as the data loader prepared the training images, which
    the model does not do itself (a uint8 image given as it is was classified with full confidence, wrongly)."""
    height, width, channels = (list(ds.input_shape) + [1])[:3]
    mode = {1: "one grey channel", 3: "RGB", 4: "RGBA"}.get(channels, f"{channels} channels")
    kind = str(ds.source).partition(":")[0]
    if kind == "images":
        from search.data import image_preparation

        color_mode = {1: "grayscale", 3: "rgb", 4: "rgba"}[channels]
        return (f"float32 images of {height}x{width} pixels, {mode}, pixel values in [0, 1] (8-bit values / 255): "
                + image_preparation(height, width, color_mode, bool(image_size)))
    if kind == "sklearn":
        return "float32 8x8 digit images with one channel: sklearn.datasets.load_digits().images / 16"
    return (f"float32 images of {height}x{width} pixels, {mode}, pixel values as the training images had them: "
            f"the npz (or the API's x) read with unsigned integers divided by their type's maximum (uint8 / 255) "
            f"and floats as given")


def output_names(io: dict[str, Any]) -> list[str]:
    """The columns of the frame the logged model's pyfunc form gives: a binary model's one value is the
    probability of its second class, a multiclass model's one per class, a regression model's the target."""
    if io.get("task") == "binary":
        return [str(io["classes"][1])]
    if io.get("task") == "multiclass":
        return [str(c) for c in io["classes"]]
    return [str(io.get("target") or "prediction")]


def line(io: dict[str, Any]) -> str:
    """The printed line: what the model takes and gives, and where the rest is written."""
    image = len(io["inputs"].get("shape", [])) > 1
    one_hot = io["inputs"].get("one_hot")
    if one_hot:
        numeric = len(io["inputs"]["features"]) - sum(len(v) for v in one_hot.values())
        taken = (f"{numeric + len(one_hot)} raw columns in its pyfunc form ({len(one_hot)} of categories, as text), "
                 f"{len(io['inputs']['features'])} with the categories one-hot encoded as column=value in its Keras "
                 f"form,")
    elif "features" in io["inputs"]:
        taken = f"{len(io['inputs']['features'])} feature columns (raw)"
    else:
        taken = io["inputs"]["as"] if image else f"raw rows of shape {io['inputs']['shape']}"
    return (f"  the model takes {taken} and gives {io['output']} (reproduce.json, 'model', has the "
            f"{'input' if image else 'column order'}{' and the classes' if 'classes' in io else ''})")
