"""Build the docs site offline: nbdev's notebook processing, as `nbdev_docs` does it, then smalldocs instead of Quarto.

`nbdev_docs` processes nbs/ into _proc/ (hidden cells removed, title and `>` summary turned into front matter, the
`show_doc` of every exported symbol added) and renders _proc/ with Quarto. Quarto cannot be installed everywhere, so
this runs the same processing and renders _proc/ with smalldocs (pure Python, in the `dev` extra).

    python tools/docs.py              # build into _docs/
    python tools/docs.py --out DIR    # build into DIR (emptied first when it holds a built site)
    python -m http.server -d _docs    # then look at it
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

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


def render(proc: Path, out: Path | None = None, quiet: bool = True):
    "Render the processed notebooks with smalldocs into `out` (default: the project's output-dir, moved to ./_docs)."
    from smalldocs.config import load
    from smalldocs.site import Site
    site = Site(load(proc), quiet=quiet)
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
