"""The Python examples of the README and of docs/ run as written, and their links resolve."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
BLOCKS = [(page.relative_to(ROOT), i, block) for page in PAGES
          for i, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S))]


def test_readme_and_docs_have_python_examples():
    assert sum(str(page) == "README.md" for page, _, _ in BLOCKS) >= 2
    assert {page.name for page, _, _ in BLOCKS} >= {"README.md", "design.md", "semantics.md"}


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


@pytest.mark.parametrize("page, index, block", BLOCKS,
                         ids=[f"{page}-{i}" for page, i, _ in BLOCKS])
def test_example_runs(page, index, block):
    exec(compile(block, f"{page} python block {index}", "exec"), {})


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_point_at_files(page):
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
        assert (page.parent / target).exists(), f"{page.name} links to a missing {target}"
