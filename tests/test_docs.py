"""The guides point at what exists: links, anchors, modules, make targets, the results table."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
GUIDES = sorted(
    [
        ROOT / "README.md",
        ROOT / "bench" / "README.md",
        ROOT / "bench" / "RESULTS.md",
        *(ROOT / "docs").rglob("*.md"),
    ]
)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)
SERVICES = "plumbing|contracts|ops|testkit|registry|enrollment|reporting"
DOTTED = re.compile(rf"\btpp_(?:{SERVICES})(?:\.[A-Za-z_]\w*)+")


def _prose(text: str) -> str:
    """The text without code blocks and code spans (their brackets are not links)."""
    return CODE.sub("", FENCE.sub("", text))


def _anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text())):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def _broken(guide: Path) -> list[str]:
    broken = []
    for target in LINK.findall(_prose(guide.read_text())):
        if re.match(r"[a-z]+:", target):  # https:, mailto:: not checked offline
            continue
        name, _, anchor = target.partition("#")
        path = (guide.parent / name).resolve() if name else guide
        if not path.exists():
            broken.append(f"{target}: no such file {path}")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target}: no heading #{anchor} in {path.name}")
    return broken


def _resolves(dotted: str) -> bool:
    """Whether ``a.b.c`` is a module, or an attribute of the longest module it starts with."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:n]))
        except ImportError:
            continue
        for name in parts[n:]:
            if not hasattr(found, name):
                return False
            found = getattr(found, name)
        return True
    return False


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_the_guide_names_exists(guide: Path) -> None:
    named = sorted({name.removesuffix(".py") for name in DOTTED.findall(guide.read_text())})
    assert [name for name in named if not _resolves(name)] == []


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_a_file_and_heading_that_exist(guide: Path) -> None:
    assert _broken(guide) == []


def test_the_readme_names_only_make_targets_that_exist() -> None:
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    named = set(re.findall(r"\bmake ([a-z][a-z-]*)", (ROOT / "README.md").read_text()))
    assert {"up", "test"} <= named
    assert named - targets == set()


def test_the_benchmark_writes_its_table_where_results_md_keeps_it(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None
    assert spec.loader is not None
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    assert run.RESULTS == ROOT / "bench" / "RESULTS.md"
    copy = tmp_path / "RESULTS.md"
    copy.write_text(run.RESULTS.read_text())
    report = {
        "when": "2026-12-07T15:00:00+00:00",
        "commit": "abc1234",
        "machine": {"cpus": 2, "python": "3.11.7"},
        "seconds": 1.0,
        "quick": True,
        "table": "| figure | value |\n| --- | --- |\n| x | 1 |",
    }
    run.update_results(report, copy)
    text = copy.read_text()
    assert "Run of 2026-12-07T15:00:00+00:00 at commit abc1234" in text
    assert text.split(run.TABLE_START)[0] == run.RESULTS.read_text().split(run.TABLE_START)[0]
    assert text.split(run.TABLE_END)[1] == run.RESULTS.read_text().split(run.TABLE_END)[1]
