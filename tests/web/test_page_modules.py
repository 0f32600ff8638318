"""The live pages preload their whole ES module graph (``<link rel="modulepreload">``), so a
viewer's browser fetches every module at once instead of one import level after another
(issue 10: page open to picture). A module added to a page's graph without its preload
fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

STATIC = Path(__file__).resolve().parents[2] / "web" / "static"
IMPORT = re.compile(r'^\s*import\s[^;]*?from\s+"\./([\w.-]+\.js)"', re.M | re.S)


def module_graph(entry: str) -> set[str]:
    """Every module ``entry`` imports, directly or not (static imports of ./x.js)."""
    seen: set[str] = set()
    todo = [entry]
    while todo:
        name = todo.pop()
        for found in IMPORT.findall((STATIC / name).read_text()):
            if found not in seen:
                seen.add(found)
                todo.append(found)
    return seen


@pytest.mark.parametrize("page", ["watch.html", "room.html"])
def test_a_live_page_preloads_its_whole_module_graph(page):
    html = (STATIC / page).read_text()
    (entry,) = re.findall(r'<script type="module" src="(?:/static/)?([\w.-]+\.js)"', html)
    preloaded = {href.rsplit("/", 1)[-1] for href in re.findall(r'<link rel="modulepreload" href="([^"]+)"', html)}
    graph = module_graph(entry)
    assert "whip.js" in graph
    assert preloaded == graph, f"{page}: preload {sorted(graph - preloaded)}, drop {sorted(preloaded - graph)}"
