"""The offline docs build (nbdev's notebook processing + smalldocs, tools/docs.py): every notebook becomes a page."""
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
sys.path.insert(0, str(ROOT / "tools"))

import docs  # noqa: E402


def notebooks() -> list:
    "Every notebook under nbs/ that nbdev documents: no file or folder starting with `_` or `.`."
    return sorted(p.relative_to(NBS) for p in NBS.rglob("*.ipynb") if not any(s[0] in "_." for s in p.relative_to(NBS).parts))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return docs.build(out=tmp_path_factory.mktemp("docs") / "_site")


def test_every_notebook_is_a_page(site):
    nbs = notebooks()
    assert len(nbs) > 10
    missing = [str(nb) for nb in nbs if not (site.out / nb.with_suffix(".html")).exists()]
    assert not missing, f"notebooks with no page: {missing}"
    for section in ("core", "strategies/index", "selectors/index", "benchmarks/index", "leaderboards/index"):
        assert (site.out / f"{section}.html").exists()
    assert not site.warnings, site.warnings


def test_sidebar_and_listings_find_every_notebook(site):
    home = (site.out / "index.html").read_text(encoding="utf-8")
    sidebar = home[home.index('id="quarto-sidebar"'):]
    for nb in notebooks():
        assert f'href="{nb.with_suffix(".html").as_posix()}"' in sidebar or f'href="./{nb.with_suffix(".html").as_posix()}"' in sidebar, nb
    for folder in ("strategies", "selectors", "benchmarks", "leaderboards"):
        page = (site.out / folder / "index.html").read_text(encoding="utf-8")
        for nb in (NBS / folder).glob("[!_.]*.ipynb"):
            assert nb.with_suffix(".html").name in page, f"{folder}/index.html does not list {nb.name}"


def test_home_page(site):
    home = (site.out / "index.html").read_text(encoding="utf-8")
    text = re.sub(r"<[^>]+>", "", home)
    assert "Quick start" in home and "from erasus import get_scenario, unlearn" in text
    assert "oracle: forget acc" in text  # the quick-start's saved output
    assert "negative_gradient" in text and "<table" in home  # the registry tables
    assert ".ci/test" in text
    assert "set_num_threads" not in text  # the hidden setup cell stays hidden


def test_core_page(site):
    "As with `nbdev_docs`: exported symbols are documented by `show_doc` (signature in a code block), hidden cells go."
    core = (site.out / "00_core.html").read_text(encoding="utf-8")
    text = re.sub(r"<[^>]+>", "", core)
    assert 'id="registry"' in core and re.search(r'<code class="sourceCode python">.*Registry\(', core)
    assert "#|" not in text and "from fastcore.test import" not in text
