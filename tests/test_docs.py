"""The README stays short and its links hold: internals live in docs/, and every link there resolves."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"(?m)^#+ (.+)$", markdown)}


def test_the_readme_is_short_and_every_local_link_exists():
    text = (ROOT / "README.md").read_text()
    assert len(text) < 12_000, len(text)
    targets = LINK.findall(text)
    assert any(t.startswith("docs/") for t in targets)
    for target in targets:
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), target
    for anchor in re.findall(r"\]\(#([^)]+)\)", text):
        assert anchor in _anchors(text), anchor


@pytest.mark.parametrize("doc", sorted((ROOT / "docs").glob("*.md")), ids=lambda p: p.name)
def test_every_doc_links_back_and_its_links_exist(doc):
    text = doc.read_text()
    assert "../README.md" in text
    for target in LINK.findall(text):
        if not target.startswith(("http://", "https://")):
            assert (doc.parent / target).exists(), (doc.name, target)


def test_the_setup_keeps_its_two_commands_and_there_is_a_license():
    text = (ROOT / "README.md").read_text()
    setup = text[text.index("## Set up on a fresh machine"):text.index("## The commands")]
    assert re.findall(r"```\n(.+)\n```", setup) == [
        "python3 -m venv .venv && . .venv/bin/activate && pip install . && search run spaces/digits_mlp.yaml",
        "python3 -m venv .venv && . .venv/bin/activate && pip install '.[test]' && "
        "python -m pytest -q -n auto --dist loadfile"]
    assert "Copyright (c) 2026 the search authors" in (ROOT / "LICENSE").read_text()
