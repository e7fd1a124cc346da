"""YAML as a space file's author means it, read and written the same way.

PyYAML follows YAML 1.1, where a float needs a dot: ``1e-3`` is the string "1e-3", which a learning rate
never is. Here it is a number, and a string that looks like one is quoted when written, so what is
written reads back the same. A key given twice in one mapping is an error naming its line: YAML would
let the second silently replace the first (a second ``train:`` section replaced the first). Integers
are read as YAML 1.2 reads them: ``batch_size: 010`` is ten, not YAML 1.1's octal eight.
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


_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
# YAML 1.2's integers: 010 is ten (YAML 1.1 read eight), 0o17 is octal, and 1:04 is text (YAML 1.1 read
# sixty-four, a base-60 number); floats lose the base-60 form too.
_INT_12 = re.compile(r"^[-+]?(?:[0-9][0-9_]*|0x[0-9a-fA-F_]+|0o[0-7_]+|0b[01_]+)$")
_FLOAT_12 = re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?"
                       r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(_INT, _INT_12, _FIRST)
_Loader.add_implicit_resolver(_FLOAT, _FLOAT_12, _FIRST)
for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver(_FLOAT, _EXPONENT_FLOAT, _FIRST)
_Dumper.add_implicit_resolver(_INT, _INT_12, _FIRST)  # text that reads as one of them is quoted when written


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node)).replace("_", "")
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    base = {"0x": 16, "0o": 8, "0b": 2}.get(digits[:2].lower())
    return sign * (int(digits[2:], base) if base else int(digits, 10))


_Loader.add_constructor(_INT, _construct_int)


def parse_yaml(text: str) -> Any:
    """A space file's YAML (raises ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506  (a SafeLoader)


def dump_yaml(data: Any) -> str:
    """``data`` as YAML that :func:`parse_yaml` reads back unchanged."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False)
