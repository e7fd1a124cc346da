"""YAML as a space file's author means it, read and written the same way.

PyYAML follows YAML 1.1, where a float needs a dot: ``1e-3`` is the string "1e-3", which a learning rate
never is. Here it is a number, and a string that looks like one is quoted when written, so what is
written reads back the same. A key given twice in one mapping is an error naming its line: YAML would
let the second silently replace the first (a second ``train:`` section replaced the first).
"""
from __future__ import annotations

import re
from typing import Any

import yaml

_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$")
_FIRST = list("-+0123456789.")
_MERGE = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    def compose_mapping_node(self, anchor: Any) -> Any:
        # Checked as written, before any merge (<<) is flattened into the mapping: keys a merge brings in
        # may be overridden, and flattening rewrites shared nodes in place.
        node = super().compose_mapping_node(anchor)
        seen: set[str] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE:
                continue
            if key_node.value in seen:
                raise yaml.composer.ComposerError(
                    None, None, f"the key '{key_node.value}' is given twice in the same section (the second "
                    "would silently replace the first); keep one", key_node.start_mark)
            seen.add(key_node.value)
        return node


class _Dumper(yaml.SafeDumper):
    pass


for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, _FIRST)


def parse_yaml(text: str) -> Any:
    """A space file's YAML (raises ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506  (a SafeLoader)


def dump_yaml(data: Any) -> str:
    """``data`` as YAML that :func:`parse_yaml` reads back unchanged."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False)
