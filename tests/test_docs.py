"""The README and docs/: every link between them leads somewhere, and the README's first screen holds what it promises."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "benchmarks" / "NOTES.md"]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"(?m)^#+ (.+)$", re.sub(r"(?ms)^```.*?^```", "", page.read_text()))
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_relative_link_names_a_file_and_heading_that_exist(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name} links to {target}, which does not exist"
        if anchor:
            assert anchor in anchors(linked), f"{page.name} links to {target}: no such heading"


def test_the_readme_fits_a_screen_with_its_results_and_both_set_up_commands():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 250
    first_screen = "\n".join(lines[:40])
    assert "pip install -e . && python -m mnist_lit fit" in first_screen
    assert "pip install -e '.[dev]' && python -m pytest" in first_screen
    assert "| result | measured |" in first_screen
    # .ci/run runs the README's test command verbatim.
    assert "pip install -e '.[dev]' && python -m pytest" in (REPO / ".ci" / "run").read_text()


def test_the_readme_layout_names_every_module_where_it_is():
    section = (REPO / "README.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    listed, folders = set(), []
    for line in section.splitlines():
        found = re.match(r"^    ( *)(\S+)", line)
        if not found:
            continue
        depth, name = len(found.group(1)) // 2, found.group(2)
        if name.endswith("/"):
            folders[depth:] = [name.rstrip("/")]
        elif name.endswith(".py") and folders and folders[0] == "mnist_lit":
            listed.add("/".join([*folders[:depth], name]))
    package = {str(path.relative_to(REPO)) for path in (REPO / "mnist_lit").rglob("*.py") if path.name != "__init__.py"}
    assert listed == package, f"missing from the README: {sorted(package - listed)}; no such module: {sorted(listed - package)}"
