"""Every relative link in README.md and docs/*.md leads to a file of this repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target) and ![alt](target); code spans are removed first, so `[x](y)` in code is no link.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)


def relative_links(page: Path) -> list[str]:
    """Link targets that point into the repository (no scheme, no pure #anchor)."""
    text = CODE.sub("", page.read_text())
    targets = [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]
    return [t.split("#", 1)[0] for t in targets]


def test_the_pages_have_links_to_check():
    assert sum(len(relative_links(page)) for page in PAGES) > 20


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves_to_a_file(page):
    broken = [t for t in relative_links(page) if not (page.parent / t).resolve().is_file()]
    assert broken == [], f"{page.relative_to(ROOT)} links to missing files: {broken}"


def test_a_missing_target_is_caught(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("See [the format](reference/format.md#keys), `[not](a-link.md)` and [web](https://x.org).\n")
    assert relative_links(page) == ["reference/format.md"]
