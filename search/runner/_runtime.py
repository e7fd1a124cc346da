"""Process-wide TensorFlow settings that must be made before TensorFlow starts its thread pools."""
from __future__ import annotations

import contextlib
import os
import warnings
from typing import Any, Iterator

from search._tensorflow import import_quietly

_configured = False


def configure(threads: int | None = None) -> None:
    """Quiet TensorFlow's start-up logs and cap its thread pools (default: all cores).

    Threads asked for where TensorFlow has already started with other ones (a notebook that used it first,
    an earlier call with another number) cannot be applied: that is warned about, not passed over.
    """
    global _configured
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    tf = import_quietly()
    if not _configured:
        # GPU memory grows on demand: TensorFlow would otherwise take a whole card for an 8 x 8 digit model,
        # and a second worker on the same card could not start.
        try:
            for gpu in tf.config.list_physical_devices("GPU"):
                tf.config.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError, AttributeError):  # already initialized, or no GPU support built in
            pass
        _configured = True
    if threads:
        _set_threads(tf, threads)


def _set_threads(tf: Any, threads: int) -> None:
    """TensorFlow's setters return quietly for the number they already hold and refuse another once it has
    started: the refusal is the caller's to hear, as their threads= is not what the trials run with."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
    except RuntimeError:
        kept = tf.config.threading.get_intra_op_parallelism_threads()
        if kept == threads or (not kept and os.environ.get("TF_NUM_INTRAOP_THREADS", "").strip() == str(threads)):
            return  # started with the number asked for (the environment's)
        keeps = f"its {kept} thread(s)" if kept else "its own number (one per core, or TF_NUM_INTRAOP_THREADS)"
        warnings.warn(f"threads={threads} cannot be applied: TensorFlow has already started in this process and keeps "
                      f"{keeps}; set threads in a fresh process before anything uses TensorFlow, or set "
                      f"TF_NUM_INTRAOP_THREADS before it starts", RuntimeWarning, stacklevel=3)


@contextlib.contextmanager
def live_objects_frozen() -> Iterator[None]:
    """Keep every object alive now out of the garbage collector's sight while the block runs.

    ``reset_keras`` collects garbage before each model, and a full collection walks every tracked object:
    with TensorFlow, Keras, MLflow and SQLAlchemy loaded that is some 650,000 objects and 350 ms per model
    on a 2-core machine, 15 % of a 2-second trial. The modules, the data and the stores outlive the trials,
    so they are set aside for the run (each model's garbage is still collected) and given back after it,
    so a caller that runs several studies in one process leaks nothing.
    """
    import gc

    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def reset_keras() -> None:
    """Drop the previous model's graphs so memory stays flat over hundreds of models in one process.

    ``clear_session`` alone is not enough in TensorFlow 2.21: every traced train step goes through
    ``tf.distribute``'s ``all_reduce``, whose graph-mode ``custom_gradient`` registers its gradient under
    a fresh ``CustomGradient-N`` name in TensorFlow's global gradient registry, and that entry keeps the
    whole traced graph alive (about 4 MB per model). Those gradients are only looked up while the step
    that registered them is being traced, so once the model is gone nothing can need them.
    """
    import keras

    registry = _gradient_registry()
    if registry is not None:
        for name in [name for name in registry if name.startswith("CustomGradient-")]:
            del registry[name]
    keras.backend.clear_session(free_memory=True)  # its garbage collection frees the graphs dropped above


def _gradient_registry() -> dict | None:
    try:
        from tensorflow.python.framework import ops

        registry = ops._gradient_registry._registry
    except (ImportError, AttributeError):  # a TensorFlow whose internals moved: nothing to drop
        return None
    return registry if isinstance(registry, dict) else None
