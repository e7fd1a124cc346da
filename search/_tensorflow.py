"""TensorFlow imported without its start-up chatter, wherever the first import happens."""
from __future__ import annotations

import os
from typing import Any


def import_quietly() -> Any:
    """Import TensorFlow with the process's stderr closed: its C++ start-up notices bypass Python logging."""
    import sys

    if "tensorflow" in sys.modules:  # imported by the user first: their logging settings stay theirs
        _hide_our_retracing()
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        try:
            import tensorflow as tf
            import keras  # noqa: F401  (its backend start-up prints too)
        except Exception:
            tf = None
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    if tf is None:  # import again with stderr open, so the real error is seen
        import tensorflow as tf
    # Its Python-side warnings (e.g. "triggered tf.function retracing") are about TensorFlow's internals,
    # not about anything a user of `search` can act on.
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    _hide_our_retracing()
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass
    return tf


class _OurRetracing:
    """Drops TensorFlow's "triggered tf.function retracing" warning about the functions a trial's fused splits
    are traced into (search/runner/fused.py): each trial traces its own on purpose, for its own models."""

    def filter(self, record: Any) -> bool:
        message = record.getMessage()
        return not ("retracing" in message and ("_trace_train" in message or "_trace_eval" in message))


def _hide_our_retracing() -> None:
    import logging

    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _OurRetracing) for f in logger.filters):
        logger.addFilter(_OurRetracing())
