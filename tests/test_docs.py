"""The offline docs build (nbdev's notebook processing + smalldocs, tools/docs.py): every notebook becomes a page."""
import html
import os
import re
import sys
from collections import defaultdict
from pathlib import Path, PurePosixPath

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
    for section in ("modules", "strategies/index", "selectors/index", "benchmarks/index", "leaderboards/index"):
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
    assert "def registry_table" not in text  # the hidden setup cell stays hidden


def test_core_page(site):
    "As with `nbdev_docs`: exported symbols are documented by `show_doc` (signature in a code block), hidden cells go."
    core = (site.out / "00_core.html").read_text(encoding="utf-8")
    text = re.sub(r"<[^>]+>", "", core)
    assert 'id="registry"' in core and re.search(r'<code class="sourceCode python">.*Registry\(', core)
    assert "#|" not in text and "torch.set_num_threads(1)" not in text   # hidden setup stays hidden
    assert "from fastcore.test import" in text   # the test helpers the examples use are visible: copying test_eq works


def pages(site) -> dict:
    "Every built page's HTML, by its path in the site."
    return {p.relative_to(site.out).as_posix(): p.read_text(encoding="utf-8") for p in site.out.rglob("*.html")}


def test_pages_are_offline_and_render_math(site):
    "No page loads a script or stylesheet from the network (KaTeX came from a CDN); maths is MathML, not raw TeX."
    html = pages(site)
    external = {name: re.findall(r'<(?:script|link)\b[^>]*(?:src|href)="(?:https?:)?//[^"]*"', page) for name, page in html.items()}
    external = {k: v for k, v in external.items() if v}
    assert not external, external
    with_math = {name for name, page in html.items() if 'class="math ' in page}
    assert {"02a_budgets.html", "strategies/21_negative_gradient.html"} <= with_math
    for name in with_math:
        spans = re.findall(r'<span class="math (?:inline|display)">(.*?)</span>', html[name], re.S)
        raw = [s for s in spans if not s.startswith("<math")]  # KaTeX's \(...\) delimiters, left for a script
        assert not raw, (name, raw[:3])
        untranslated = re.findall(r">([^<]*\\[A-Za-z|][^<]*)<", "".join(spans))  # a TeX command MathML would show as text
        assert not untranslated, (name, untranslated[:3])
    assert '<math xmlns="http://www.w3.org/1998/Math/MathML" display="block">' in html["strategies/21_negative_gradient.html"]


def test_links_stay_in_the_offline_site(site):
    "Cross-references (nbdev writes the published site's address and page names) lead to this build's own pages."
    base = "https://erasus.github.io/erasus/"
    missing = []
    for name, page in pages(site).items():
        assert f'href="{base}' not in page, (name, re.findall(f'href="{re.escape(base)}[^"]*', page)[:3])
        for href in re.findall(r'href="([^"#:?]+\.html)[#"?]', page):
            if not (site.out / os.path.normpath(os.path.join(os.path.dirname(name), href))).exists(): missing.append((name, href))
    assert not missing, missing[:10]
    assert 'href="05_api.html#unlearn"' in (site.out / "index.html").read_text(encoding="utf-8")


def test_no_two_sources_share_a_page_in_the_real_build():
    "The real build names a notebook's page after it, less its number (nbdev's output-file): `00_core` is `core.html`."
    names = defaultdict(list)
    for p in sorted([*NBS.rglob("*.ipynb"), *NBS.rglob("*.qmd")]):
        rel = PurePosixPath(p.relative_to(NBS).as_posix())
        if not any(s[0] in "_." for s in rel.parts): names[docs.published_name(rel)].append(str(rel))
    assert len(names) > 10
    shared = {str(k): v for k, v in names.items() if len(v) > 1}
    assert not shared, shared


def _tables(page: str) -> list:
    "Each table on a page as (header cells, first cell of each body row, folded: inside a `<details>` toggle)."
    folds = [(m.start(), m.end()) for m in re.finditer(r"<details\b.*?</details>", page, re.S)]
    text = lambda c: re.sub(r"<[^>]+>", "", c).strip()
    out = []
    for m in re.finditer(r"<table\b.*?</table>", page, re.S):
        head = re.search(r"<thead>(.*?)</thead>", m.group(0), re.S)
        rows = re.findall(r"<tr\b.*?</tr>", head.group(1) if head else m.group(0), re.S)
        cells = [text(c) for c in re.findall(r"<th\b[^>]*>(.*?)</th>", rows[-1] if rows else "", re.S)]
        body = re.search(r"<tbody>(.*?)</tbody>", m.group(0), re.S)
        labels = [text(r[0]) for r in (re.findall(r"<t[hd]\b[^>]*>(.*?)</t[hd]>", row, re.S)
                                       for row in re.findall(r"<tr\b.*?</tr>", body.group(1) if body else "", re.S)) if r]
        out.append((cells, labels, any(a <= m.start() < b for a, b in folds)))
    return out


def _prose(page: str) -> str:
    "A page's text outside code, maths, scripts and styles: what the reader reads as prose."
    main = page[page.find("<main"):page.rfind("</main>")]
    for tag in ("pre", "code", "math", "script", "style"): main = re.sub(rf"<{tag}\b.*?</{tag}>", " ", main, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", main))


def test_no_tex_left_for_a_script(site):
    "Prose holds no TeX that a script would have had to render (`$...$` markdown did not take as maths, or `\\frac`)."
    tex = re.compile(r"\$[^$\s][^$]*?\$|\\(?:frac|sum|mathcal|mathbb|theta|lambda|alpha|nabla|left|right|operatorname|begin)\b")
    raw = {name: tex.findall(_prose(page))[:3] for name, page in pages(site).items()}
    raw = {k: v for k, v in raw.items() if v}
    assert not raw, raw


def test_leaderboard_tables_lead_with_their_key_columns(site):
    "Leaderboard tables: rank, strategy and Avg. Gap first, few enough columns to fit at 1400 px, and readers' names."
    found = 0
    for name, page in pages(site).items():
        if not name.startswith("leaderboards/") or name.endswith("index.html"): continue
        for cells, _, folded in _tables(page):
            raw = [c for c in cells if re.fullmatch(r"\w+_\w+", c)]   # `avg_gap`, `mia_svc`: a column name, not a label
            assert not raw, (name, cells)
            if folded or "Avg. Gap ↓" not in cells: continue
            found += 1
            assert cells.index("Avg. Gap ↓") <= 5 and len(cells) <= 10, (name, cells)
            # a leaderboard ranks strategies, or selectors under one strategy (the KD x selectors page)
            if "rank" in cells: assert cells[0] == "rank" and cells[1] in ("strategy", "selector") and cells[2] == "Avg. Gap ↓", (name, cells)
    assert found >= 4


def test_experiment_tables_show_avg_gap(site):
    "A table of strategies' forget and retain accuracy beside the oracle's (`compare`'s) also shows Avg. Gap, which ranks them."
    missing = []
    for name, page in pages(site).items():
        for cells, labels, _ in _tables(page):
            against_oracle = "retrain" in labels and set(labels) - {"base", "retrain"}
            if {"forget_acc", "retain_acc"} <= set(cells) and against_oracle and not {"avg_gap", "Avg. Gap ↓"} & set(cells):
                missing.append((name, cells))
    assert not missing, missing[:5]
