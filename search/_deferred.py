"""Modules named in the public API's annotations, imported only when those are evaluated."""
from __future__ import annotations

import importlib
from typing import Any


class DeferredModule:
    """Stands for a module in a module's globals until an annotation such as ``keras.Model`` is evaluated
    (``typing.get_type_hints``, an IDE, sphinx): importing Keras takes seconds, which a command that never
    builds a model should not pay, and annotations held under ``TYPE_CHECKING`` alone raised NameError there."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported when used>"
