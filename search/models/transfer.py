"""Transfer learning: a ``keras.applications`` backbone, cut at a layer, frozen, with a new dense head.

The backbone's weights come only from a local file the space file names (``model.weights``); nothing is
ever downloaded. Its own ``preprocess_input`` runs inside the model, and its BatchNormalization layers
always run in inference mode with frozen statistics (Keras' fine-tuning advice: a few small batches
would wreck statistics learned on a million images).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from search.errors import SpaceError
from search.models._params import ACTIVATIONS, AUGMENT_PARAMS, Param, augment_settings
from search._redact import redact

IMAGE_INPUT = True
USES_FILES = True  # build() receives the space file's folder to find the weights file

# keras.applications constructor → the module whose preprocess_input it expects.
BACKBONES: dict[str, str] = {
    "MobileNet": "mobilenet", "MobileNetV2": "mobilenet_v2", "MobileNetV3Small": "mobilenet_v3",
    "MobileNetV3Large": "mobilenet_v3", "EfficientNetB0": "efficientnet", "EfficientNetV2B0": "efficientnet_v2",
    "ResNet50": "resnet50", "ResNet50V2": "resnet_v2", "InceptionV3": "inception_v3", "Xception": "xception",
    "VGG16": "vgg16", "VGG19": "vgg19", "DenseNet121": "densenet", "NASNetMobile": "nasnet",
    "ConvNeXtTiny": "convnext",
}
WITH_ALPHA = ("MobileNet", "MobileNetV2", "MobileNetV3Small", "MobileNetV3Large")

PARAMS: dict[str, Param] = {
    "backbone": Param("str", "MobileNetV2", choices=tuple(BACKBONES), doc="a keras.applications model"),
    "weights": Param("str", "", doc="path of the backbone's weights file (.weights.h5 or a no-top .h5)"),
    "alpha": Param("float", 1.0, low=0.1, high=2.0, doc="width multiplier of the MobileNets"),
    "cut_at": Param("str", "", doc="name of the backbone layer whose output feeds the head; '': the last"),
    "resize": Param("int", 0, low=0, high=2048, doc="resize images to this square size first; 0: keep"),
    "unfreeze": Param("int", 0, low=0, high=100_000,
                      doc="train the last N weighted layers of the (cut) backbone, BatchNorm excepted"),
    "pool": Param("str", "average", choices=("average", "max", "flatten")),
    "batchnorm": Param("bool", False, off=False, doc="BatchNormalization of the pooled features"),
    "dense_units": Param("int", 128, low=0, high=65_536, doc="units of the hidden head layer; 0: none"),
    "activation": Param("str", "relu", choices=ACTIVATIONS),
    "dropout": Param("float", 0.0, low=0.0, high=1.0, high_open=True, off=0.0),
    "dropconnect": Param("float", 0.0, low=0.0, high=1.0, high_open=True, off=0.0),
    "l2": Param("float", 0.0, low=0.0, high=10.0, off=0.0, doc="L2 on the head's kernels"),
    **AUGMENT_PARAMS,
}

HOW_TO_GET_WEIGHTS = (
    "Nothing is downloaded at run time. On a machine with network access, save the backbone's weights once, "
    "e.g. python -c \"import keras; keras.applications.{name}(include_top=False, weights='imagenet'{alpha})"
    ".save_weights('{stem}.weights.h5')\", copy the file here and name it in model.weights (the no-top .h5 "
    "files of github.com/fchollet/deep-learning-models/releases load too)")


def build(settings: dict[str, Any], input_shape: tuple[int, ...], head: Any, search_dir: Path | None = None) -> Any:
    """augment → (resize) → the backbone's preprocessing → frozen backbone → pool → dense → dropout → head."""
    import keras
    from keras import layers

    from search.models.layers import Augment, BackbonePreprocess, dense

    size = int(settings["resize"])
    image_hw = (size, size) if size else (int(input_shape[0]), int(input_shape[1]))
    backbone = load_backbone(settings, image_hw, search_dir)
    freeze(backbone, int(settings["unfreeze"]))
    inputs = keras.Input(shape=input_shape)
    augment = Augment(**augment_settings(settings), name="augment")
    # Left out when off: a model without this package's layers loads with plain Keras (and MLflow).
    x = augment(inputs) if augment.active else inputs
    if size:
        x = layers.Resizing(size, size)(x)
    x = BackbonePreprocess(BACKBONES[settings["backbone"]], name="backbone_preprocess")(x)
    # training=False keeps BatchNorm in inference mode even for unfrozen layers.
    x = backbone(x, training=False)
    x = {"average": layers.GlobalAveragePooling2D, "max": layers.GlobalMaxPooling2D,
         "flatten": layers.Flatten}[settings["pool"]]()(x)
    if settings["batchnorm"]:  # features of a cut backbone can sit on any scale
        x = layers.BatchNormalization()(x)
    regularizer = keras.regularizers.L2(settings["l2"]) if settings["l2"] else None
    if int(settings["dense_units"]) > 0:
        x = dense(int(settings["dense_units"]), settings["dropconnect"], activation=settings["activation"],
                  kernel_regularizer=regularizer)(x)
    if settings["dropout"] > 0:
        x = layers.Dropout(settings["dropout"])(x)
    return keras.Model(inputs, head.layer(x), name="transfer")


def load_backbone(settings: dict[str, Any], image_hw: tuple[int, int], search_dir: Path | None = None,
                  source: str | None = None) -> Any:
    """The backbone with the file's weights, cut at ``cut_at``, as a model named ``backbone``."""
    import warnings

    import keras

    name = settings["backbone"]
    path = weights_path(settings, search_dir, source)
    kwargs: dict[str, Any] = {"include_top": False, "weights": None, "input_shape": (*image_hw, 3)}
    if name in WITH_ALPHA:
        kwargs["alpha"] = float(settings["alpha"])
    elif float(settings["alpha"]) != 1.0:
        raise SpaceError(f"alpha applies only to {', '.join(WITH_ALPHA)}", source=source, field="model.alpha",
                         found=settings["alpha"])
    try:
        base = getattr(keras.applications, name)(**kwargs)
    except ValueError as exc:  # input too small, an alpha the architecture lacks, ...
        raise SpaceError(f"cannot build {name} for {image_hw[0]}×{image_hw[1]} images ({exc}); "
                         f"'model.resize' can enlarge them", source=source, field="model.backbone") from None
    try:
        with warnings.catch_warnings(record=True) as caught:  # our error below says it better
            warnings.simplefilter("always")
            _load_weights(base, path)
        skipped = [str(w.message) for w in caught if "freshly-initialized" in str(w.message)]
        if skipped:  # a partial load would train on random features without a word
            raise ValueError(f"{len(skipped)} parts of the model found no weights in the file: {skipped[0]}")
    except Exception as exc:  # wrong architecture, alpha or format: Keras raises several types
        said = redact(str(exc))
        said = said if len(said) <= 300 else said[:300].rsplit(" ", 1)[0] + " ..."  # not cut inside a word
        raise SpaceError(f"cannot load {path} into {name} ({type(exc).__name__}: {said})",
                         source=source, field="model.weights",
                         expected=f"weights saved from keras.applications.{name}(include_top=False"
                         f"{', alpha=' + str(settings['alpha']) if name in WITH_ALPHA else ''})") from None
    cut = settings["cut_at"]
    if cut:
        names = [layer.name for layer in base.layers]
        if cut not in names:
            import difflib

            close = difflib.get_close_matches(str(cut), names, n=1)
            raise SpaceError(f"{name} has no layer named '{cut}'" + (f"; did you mean '{close[0]}'?" if close else ""),
                             source=source, field="model.cut_at",
                             expected=f"a layer name such as {', '.join(names[-6:])} "
                                      f"(list them with keras.applications.{name}(include_top=False, "
                                      "weights=None).summary())", found=cut)
        return keras.Model(base.input, base.get_layer(cut).output, name="backbone")
    return keras.Model(base.input, base.output, name="backbone")


def _load_weights(model: Any, path: Path) -> None:
    """Keras picks the reader by the name's ending: a Keras 3 weights file renamed from ``.weights.h5`` to
    ``.h5`` would go to the Keras 2 reader and fail with "found 0 saved layers". Such a file is read
    through a link with the ending its format needs."""
    import tempfile

    name = path.name.lower()
    if name.endswith((".h5", ".hdf5")) and not name.endswith(".weights.h5") and _keras3_weights(path):
        with tempfile.TemporaryDirectory(prefix="search-weights-") as folder:
            link = Path(folder) / f"{path.stem}.weights.h5"
            link.symlink_to(path)
            model.load_weights(str(link))
        return
    model.load_weights(str(path))


def _keras3_weights(path: Path) -> bool:
    """Whether an HDF5 file is in Keras 3's weights layout (groups ``layers``/``vars``, no ``layer_names``)."""
    try:
        import h5py

        with h5py.File(path, "r") as fh:
            return "layer_names" not in fh.attrs and ("layers" in fh or "vars" in fh)
    except Exception:  # not HDF5 at all: Keras' own reader says so
        return False


def freeze(backbone: Any, unfreeze: int) -> list[str]:
    """Freeze the backbone but its last ``unfreeze`` weighted non-BatchNorm layers; return their names."""
    candidates = _unfreezable(backbone)
    # Clamped: past the count, a negative start wrapped round and trained only the last few layers.
    chosen = candidates[max(0, len(candidates) - unfreeze):] if unfreeze > 0 else []
    for layer in backbone.layers:
        layer.trainable = False
    for layer in chosen:
        layer.trainable = True
    return [layer.name for layer in chosen]


def weights_path(settings: dict[str, Any], search_dir: Path | None, source: str | None = None) -> Path:
    """The weights file, looked up from the working folder, then the space file's folder."""
    name, given = settings["backbone"], settings["weights"]
    alpha = f", alpha={settings['alpha']}" if name in WITH_ALPHA and float(settings["alpha"]) != 1.0 else ""
    how = HOW_TO_GET_WEIGHTS.format(name=name, alpha=alpha, stem=BACKBONES[name])
    if not given:
        raise SpaceError("the transfer family needs the backbone's weights file. " + how, source=source,
                         field="model.weights", expected="a path to a local weights file")
    tried = []
    for base in [Path.cwd(), *([search_dir] if search_dir else [])]:
        candidate = (base / Path(str(given)).expanduser()).resolve()  # ~ as data.source reads it
        if candidate.is_file():
            return candidate
        tried.append(str(candidate))
    folders = [t for t in dict.fromkeys(tried) if Path(t).is_dir()]
    if folders:
        raise SpaceError(f"{folders[0]} is a folder; model.weights names the weights file itself (such as "
                         f"{folders[0]}/{BACKBONES[name]}.weights.h5)", source=source, field="model.weights",
                         found=given)
    raise SpaceError("the backbone weights file does not exist (looked at " + " and ".join(dict.fromkeys(tried))
                     + "). " + how, source=source, field="model.weights", found=given)


def preflight(model: dict[str, Any], input_shape: tuple[int, ...], preprocess: str, search_dir: Path | None,
              source: str | None, sample: Any = None) -> list[str]:
    """Check the weights file, the cut layer and the input size once, before any trial trains; returns
    warnings. With ``sample`` (a few development images), also what the backbone makes of them."""
    from search.models._params import is_distribution

    if preprocess != "none":
        raise SpaceError("the transfer family applies the backbone's own preprocessing to pixels in [0, 1]; "
                         "do not rescale them again", source=source, field="data.preprocess",
                         expected="none (the default for image data)", found=preprocess)
    if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
        raise SpaceError(f"the backbone takes colour images (height, width, 3 channels; grey ones are repeated to "
                         f"3), but the rows are {tuple(input_shape)}", source=source, field="data.color_mode",
                         expected="rgb or grayscale images", found=tuple(input_shape))
    fixed = {key: (model.get(key, spec.default)) for key, spec in PARAMS.items()}
    cuts = fixed["cut_at"]["choice"] if is_distribution(fixed["cut_at"]) and "choice" in fixed["cut_at"] else None
    if any(is_distribution(fixed[k]) for k in ("backbone", "weights", "alpha", "resize")) or (
            is_distribution(fixed["cut_at"]) and cuts is None):
        _every_combination_builds(fixed, input_shape, search_dir, source)
        return []
    size = int(fixed["resize"])
    image_hw = (size, size) if size else (int(input_shape[0]), int(input_shape[1]))
    counts, flat = {}, []
    for cut in cuts or [fixed["cut_at"]]:
        backbone = load_backbone({**fixed, "cut_at": cut}, image_hw, search_dir, source)
        counts[cut] = len(_unfreezable(backbone))
        if sample is not None and len(sample):
            spread = _feature_spread(backbone, fixed["backbone"], sample, size)
            if spread < FLAT_FEATURES:
                flat.append(f"{cut or 'its last layer'} ({spread:.2g})")
    warnings = _unfreeze_warnings(fixed["unfreeze"], counts, fixed["backbone"])
    if flat:
        warnings.append(f"the backbone's features hardly vary across {len(sample)} development images: their "
                        f"largest spread at {', '.join(flat)} is under {FLAT_FEATURES:g}, where weights trained "
                        f"on images spread 0.1 to 1 there. The weights look untrained (saved from weights=None) "
                        f"or their BatchNormalization statistics unset, and every image then gets nearly the "
                        f"same features, so the head predicts one class; save them from "
                        f"keras.applications.{fixed['backbone']}(include_top=False, weights='imagenet'"
                        f"{', alpha=' + str(fixed['alpha']) if fixed['backbone'] in WITH_ALPHA else ''})")
    return warnings


# Each combination a trial may draw is built once before any trial: a few seconds each, so up to this many.
MAX_COMBINATIONS = 12


def _every_combination_builds(fixed: dict[str, Any], input_shape: tuple[int, ...], search_dir: Path | None,
                              source: str | None) -> None:
    """A searched backbone, weights file, alpha, cut or size: every combination of them a trial may draw
    must build, since the sampler draws each on its own. Checked only at the first value before, a bad
    choice failed trial after trial once the run had started."""
    import itertools

    from search.models._params import is_distribution

    def values(value: Any) -> list[Any]:
        if not is_distribution(value):
            return [value]
        if "choice" in value:
            return list(value["choice"])
        low, high = (value.get("int") or value.get("float"))[:2]
        return sorted({low, high})  # a size range: its two ends, the smallest image and the largest

    keys = ("backbone", "weights", "alpha", "resize", "cut_at")
    combinations = list(itertools.product(*(values(fixed[k]) for k in keys)))
    if len(combinations) > MAX_COMBINATIONS:
        return  # each trial's build checks its own; too many to build here
    for combination in combinations:
        settings = {**fixed, **dict(zip(keys, combination))}
        size = int(settings["resize"] or 0)
        image_hw = (size, size) if size else (int(input_shape[0]), int(input_shape[1]))
        try:
            load_backbone(settings, image_hw, search_dir, source)
        except SpaceError as exc:
            drawn = ", ".join(f"{k} {combination[i]!r}" for i, k in enumerate(keys) if is_distribution(fixed[k]))
            said = str(exc).removeprefix(f"{exc.source}: " if exc.source else "")
            said = said.removeprefix(f"field '{exc.field}': " if exc.field else "").rstrip(".")
            raise SpaceError(f"a trial may draw {drawn}, which cannot be built: {said}. The "
                             f"searched settings are drawn each on its own, so every combination must work: "
                             f"drop the choice that fails, or search one backbone (with its weights file) per "
                             f"study", source=source, field=exc.field or "model.backbone") from None


# A backbone's features spread across images by 0.1 to 1 with trained (or BatchNorm-calibrated) weights (0.8
# to 2.2 calibrated, at block_1_expand_relu to the last layer), and untrained ones (MobileNetV2 at alpha 0.35,
# saved from weights=None, on the demo shapes) by 0.03 at block_1_expand_relu, 0.003 at block_2_add, 0.0017 at
# block_3_expand_relu, 8e-5 at block_6_expand_relu and 7e-12 at the last layer: a line a decade below the
# trained ones. (At 1e-3 a stranger's cut at block_3_expand_relu passed, and every trial sat at chance.)
FLAT_FEATURES = 1e-2


def _feature_spread(backbone: Any, name: str, sample: Any, size: int) -> float:
    """The largest standard deviation across the sample of any one of the backbone's features."""
    import numpy as np
    from keras import layers

    from search.models.layers import BackbonePreprocess

    x = np.asarray(sample, dtype="float32")
    if size:
        x = layers.Resizing(size, size)(x)
    features = np.asarray(backbone(BackbonePreprocess(BACKBONES[name])(x), training=False))
    return float(features.reshape(len(features), -1).std(axis=0).max())


def _unfreeze_warnings(unfreeze: Any, counts: dict[str, int], backbone: str) -> list[str]:
    """Every value above the backbone's number of weighted layers trains the same whole backbone: a searched
    range past it spends trials on one model under several values, and a fixed value past it may mean a
    cut the user did not intend. (A warning, not a refusal: trials stored with such values still reproduce.)"""
    if isinstance(unfreeze, dict) and "int" in unfreeze:
        low, high = (int(v) for v in unfreeze["int"])
        step = int(unfreeze.get("step") or 1)
        asked = low + (high - low) // step * step  # the highest value Optuna draws
    else:
        values = unfreeze.get("choice", []) if isinstance(unfreeze, dict) else [unfreeze]
        asked = max((int(v) for v in values if not isinstance(v, bool)), default=0)
    cut = max(counts, key=counts.__getitem__)
    most = counts[cut]
    if asked <= most:
        return []
    where = (" at its largest cut" if len(counts) > 1 else "") + (f" (cut at '{cut}')" if cut else "")
    return [f"model.unfreeze reaches {asked}, but {backbone}{where} has {most} weighted layers besides BatchNorm: "
            f"every value from {most} up trains the same whole backbone; search at most {most}"]


def _unfreezable(backbone: Any) -> list[Any]:
    import keras

    return [layer for layer in backbone.layers
            if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)]
