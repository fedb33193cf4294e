"""Build the docs site offline: nbdev's notebook processing, as `nbdev_docs` does it, then smalldocs instead of Quarto.

`nbdev_docs` processes nbs/ into _proc/ (hidden cells removed, title and `>` summary turned into front matter, the
`show_doc` of every exported symbol added) and renders _proc/ with Quarto. Quarto cannot be installed everywhere, so
this runs the same processing and renders _proc/ with smalldocs (pure Python, in the `dev` extra).

    python tools/docs.py              # build into _docs/
    python tools/docs.py --out DIR    # build into DIR (emptied first when it holds a built site)
    python -m http.server -d _docs    # then look at it
    python tools/screenshots.py       # or have Chromium look at every page at 1400 px: screenshots and a report

The site works offline: maths is rendered to MathML here (latex2mathml, in the `dev` extra) instead of by KaTeX from
a CDN, and cross-reference links (nbdev writes `https://<doc_host>/<baseurl>/api.html#unlearn`, the real build's page
names) point to this build's own pages, which keep the notebooks' names (`05_api.html`).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]


def process(n_workers: int = 0) -> Path:
    "Run nbdev's docs processing of nbs/ into a fresh _proc/ and return it."
    from nbdev.quarto import refresh_quarto_yml
    from nbdev.serve import proc_nbs
    cwd = os.getcwd()
    os.chdir(ROOT)  # nbdev finds settings.ini from the working directory
    try:
        refresh_quarto_yml()  # nbs/nbdev.yml from settings.ini, as nbdev_docs does
        # force: rebuild from scratch, so a deleted or renamed notebook leaves no stale page behind
        return Path(proc_nbs(ROOT / "nbs", n_workers=n_workers, force=True))
    finally:
        os.chdir(cwd)
        _drop_shell_exit_handlers()


def _drop_shell_exit_handlers():
    "Unregister the exit handlers of the IPython shells the processing left behind: each runs a full `gc.collect()`."
    import atexit
    import gc
    from IPython.core.interactiveshell import InteractiveShell
    # nbdev's in-process processing makes a shell per notebook; at exit, dozens of collections took 10-50 s
    for o in gc.get_objects():
        if issubclass(type(o), InteractiveShell): atexit.unregister(o.atexit_operations)


# TeX that latex2mathml writes out as it is (`\Big\lVert`, `\big\langle`, `\arg`), or as a glyph few fonts have (`\setminus`): the same maths
TEX_FIXES = [
    (r"\\(big|Big|bigg|Bigg)([lrm]?)\s*\\(lVert|rVert|Vert|\|)", r"\\\1\2‖"),
    (r"\\(big|Big|bigg|Bigg)([lrm]?)\s*\\(lvert|rvert|vert)", r"\\\1\2|"),
    (r"\\(big|Big|bigg|Bigg)([lrm]?)\s*\\langle(?![a-zA-Z])", r"\\\1\2⟨"),
    (r"\\(big|Big|bigg|Bigg)([lrm]?)\s*\\rangle(?![a-zA-Z])", r"\\\1\2⟩"),
    (r"\\arg(?![a-zA-Z])", r"\\operatorname{arg}"),
    (r"\\setminus(?![a-zA-Z])", r"\\smallsetminus"),
    (r"\\text\{([^{}]*)\}", lambda m: r"\text{" + m.group(1).replace(r"\_", "_") + "}"),
]


def mathml(tex: str, display: bool = False) -> str:
    "TeX as MathML, which browsers draw without a script: `display` for a formula on its own line."
    import re
    from latex2mathml.converter import convert
    for pattern, repl in TEX_FIXES: tex = re.sub(pattern, repl, tex)
    return convert(tex, display="block" if display else "inline")


def _math_rules():
    "smalldocs' three maths render rules, writing MathML and not asking for KaTeX (a CDN script) in the page's head."
    def inline(self, tokens, idx, options, env): return f'<span class="math inline">{mathml(tokens[idx].content.strip())}</span>'
    def display(self, tokens, idx, options, env): return f'<span class="math display">{mathml(tokens[idx].content.strip(), True)}</span>'
    def block(self, tokens, idx, options, env): return f"<p>{display(self, tokens, idx, options, env)}</p>\n"
    return dict(math_inline=inline, math_display=display, math_block=block)


def published_name(src: PurePosixPath) -> PurePosixPath:
    "The page name the real (Quarto) build gives a notebook: nbdev's output-file, the name without its number prefix."
    from nbdev.doclinks import _nbpath2html
    return PurePosixPath(_nbpath2html(Path(src)).as_posix()) if src.suffix == ".ipynb" else src.with_suffix(".html")


def link_locally(site):
    "Make `site` resolve links to the real build's page names, absolute (its site-url) or relative, to its own pages."
    base = str(site.project.website.get("site-url") or "").rstrip("/")
    find, resolve = site.find_page, site.resolve
    def find_page(target):
        aliases = {published_name(src): src for src in site.pages}  # pages are read during the build, so ask each time
        return find(target) or (find(aliases[target]) if target in aliases else None)
    def resolve_local(href, page, record=True):
        # 1. the published site's own address: a link to this build's page when it has one, else left as it is
        if base and href.startswith(base + "/"):
            local = "/" + href[len(base) + 1:]
            path = PurePosixPath(local.split("#")[0].split("?")[0].lstrip("/") or "index.html")
            if find_page(path) is not None: return resolve(local, page, record)
        return resolve(href, page, record)
    site.find_page, site.resolve = find_page, resolve_local
    return site


def render(proc: Path, out: Path | None = None, quiet: bool = True):
    "Render the processed notebooks with smalldocs into `out` (default: the project's output-dir, moved to ./_docs)."
    import smalldocs.markdown
    from smalldocs.config import load
    from smalldocs.site import Site
    for name, rule in _math_rules().items(): setattr(smalldocs.markdown, name, rule)  # make_parser looks them up per page
    site = link_locally(Site(load(proc), quiet=quiet))
    if out is None:
        site.build()
        dest = ROOT / site.out.name  # as nbdev_docs does: _proc/_docs -> ./_docs
        shutil.rmtree(dest, ignore_errors=True)
        shutil.move(str(site.out), dest)
        site.out = dest
    else:
        site.out = Path(out).resolve()
        site.build()
    # nbdev's front matter names each page's output-file; smalldocs derives the same name from the notebook's
    site.warnings = [w for w in site.warnings if not w.endswith("output-file is not read by smalldocs")]
    return site


def build(out: Path | None = None, quiet: bool = True, n_workers: int = 0):
    "Process and render; returns the smalldocs `Site` (its `out`, `pages` and `warnings`)."
    return render(process(n_workers), out, quiet)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, help="output folder (default: _docs)")
    ap.add_argument("--n_workers", type=int, default=0, help="processes for the notebook processing (0: in this one)")
    args = ap.parse_args(argv)
    site = build(args.out, quiet=False, n_workers=args.n_workers)
    print(f"wrote {len(site.pages)} page(s) to {site.out}")
    for w in site.warnings: print(f"warning: {w}", file=sys.stderr)
    return 1 if site.warnings else 0


if __name__ == "__main__":
    sys.exit(main())
