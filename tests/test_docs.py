"""The Python blocks of the guides in docs/ run as written (as the README's do)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
GUIDES = ["coming-from-peft.md"]
BLOCKS = [
    (guide, i, block)
    for guide in GUIDES
    for i, block in enumerate(
        re.findall(r"```python\n(.*?)```", (DOCS / guide).read_text(encoding="utf-8"), flags=re.S)
    )
]


def test_every_guide_has_examples() -> None:
    assert {g for g, _, _ in BLOCKS} == set(GUIDES)


IDS = [f"{g}-{i}" for g, i, _ in BLOCKS]


@pytest.mark.parametrize(("guide", "index", "block"), BLOCKS, ids=IDS)
def test_guide_block_runs(guide: str, index: int, block: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(block, f"{DOCS / guide} block {index}", "exec"), {})
