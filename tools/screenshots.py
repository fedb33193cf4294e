"""Look at every page of the built docs site as a reader does: headless Chromium at 1400 px, a screenshot and a report.

    python tools/docs.py                          # build _docs/ first
    python tools/screenshots.py                   # every page: screenshots in $TMPDIR/erasus-screenshots/, report printed
    python tools/screenshots.py strategies/22_npo.html leaderboards   # some pages, or every page in a folder
    python tools/screenshots.py --no-shots        # the report only

For each page Chromium lays it out at the given width and a measuring script (added to a temporary copy of the page,
never to the site) reports what a reader would see: tables whose columns scroll out of the content column (and
which columns are hidden), code or text outputs that scroll, images wider than the column or shrunk so far that
their text is unreadable, TeX left unrendered, external scripts, broken local links and test helpers used with their
import hidden. The screenshot is the whole
page (up to `--max-height` px). This is a look at the site, slow (a browser per page): the cheap structural checks
live in tests/test_docs.py. Exit status 1 when a page has a problem.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs in the page after it loads; writes its findings as JSON into <pre id="__measure__"> for --dump-dom to return.
MEASURE_JS = r"""
<script>
window.addEventListener("load", () => {
  const main = document.querySelector("main.content") || document.querySelector("main") || document.body;
  const col = main.getBoundingClientRect();
  const out = {column: Math.round(col.width), height: document.documentElement.scrollHeight,
               tables: [], outputs: [], images: [], tex: []};
  const text = el => el.textContent.replace(/\s+/g, " ").trim();
  main.querySelectorAll("table").forEach(t => {
    if (t.closest("details:not([open])")) { out.tables.push({folded: true, cols: t.rows.length ? t.rows[0].cells.length : 0}); return; }
    if (t.closest(".sourceCode") || !t.rows.length) return;
    const box = (t.closest(".cell-output-display, .table-responsive") || t.parentElement).getBoundingClientRect();
    const right = Math.min(box.right, col.right) + 1;
    const head = t.tHead && t.tHead.rows.length ? t.tHead.rows[t.tHead.rows.length - 1] : t.rows[0];
    const cells = [...head.cells];
    out.tables.push({cols: cells.length, rows: t.rows.length, width: Math.round(t.getBoundingClientRect().width),
                     head: cells.map(text).slice(0, 40), hidden: cells.filter(c => c.getBoundingClientRect().right > right).map(text)});
  });
  main.querySelectorAll("pre").forEach(p => {   // code a reader scrolls: the cell's source, or its printed output
    if (p.scrollWidth > p.clientWidth + 2) out.outputs.push({width: p.scrollWidth, shown: p.clientWidth, start: text(p).slice(0, 80),
                                                           source: !p.closest(".cell-output, .cell-output-stdout, .cell-output-stderr, .cell-output-display")});
  });
  main.querySelectorAll("img").forEach(im => {
    const r = im.getBoundingClientRect();
    out.images.push({src: im.getAttribute("src").slice(0, 60), natural: im.naturalWidth, shown: Math.round(r.width),
                     wider: r.right > col.right + 1});
  });
  const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
  const tex = /\$[^$\s][^$]*\$|\\(frac|sum|mathcal|mathbb|theta|lambda|alpha|nabla|left|right|text|operatorname|begin)\b/;
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.parentElement.closest("pre, code, math, script, style")) continue;
    const m = n.textContent.match(tex);
    if (m) out.tex.push(n.textContent.slice(Math.max(0, m.index - 30), m.index + 50).trim());
  }
  const pre = document.createElement("pre"); pre.id = "__measure__"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def chromium() -> str:
    "The Chromium (or Chrome) executable."
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name): return shutil.which(name)
    raise FileNotFoundError("no chromium on PATH: install it (apt-get install chromium) to take screenshots")


def _run(args: list, timeout: float = 120) -> str:
    "Chromium headless with `args`; its stdout."
    base = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
            "--no-first-run", "--disable-extensions", "--allow-file-access-from-files"]
    r = subprocess.run(base + args, capture_output=True, text=True, timeout=timeout)
    return r.stdout


def measure(page: Path, width: int = 1400) -> dict:
    "Lay `page` out at `width` px and return the measuring script's findings."
    tmp = page.with_name(f".measure-{page.name}")  # beside the page, so its relative CSS and images load
    html = page.read_text(encoding="utf-8")
    tmp.write_text(html.replace("</body>", MEASURE_JS + "</body>") if "</body>" in html else html + MEASURE_JS, encoding="utf-8")
    try: dom = _run([f"--window-size={width},1000", "--virtual-time-budget=5000", "--dump-dom", tmp.as_uri()])
    finally: tmp.unlink(missing_ok=True)
    m = re.search(r'<pre id="__measure__">(.*?)</pre>', dom, re.S)
    if not m: raise RuntimeError(f"{page}: the measuring script wrote nothing")
    import html as _html
    return json.loads(_html.unescape(m.group(1)))


def static_checks(page: Path, site: Path) -> list:
    "Problems visible in the HTML itself: external scripts or stylesheets, local links to missing pages, hidden imports."
    html, found = page.read_text(encoding="utf-8"), []
    for tag in re.findall(r'<(?:script|link)\b[^>]*(?:src|href)="(?:https?:)?//[^"]*"', html): found.append(f"external resource: {tag[:100]}")
    for href in sorted(set(re.findall(r'href="([^"#:?]+\.html)[#"?]', html))):
        if not (page.parent / href).resolve().exists(): found.append(f"broken link: {href}")
    code = " ".join(re.sub(r"<[^>]+>", "", c) for c in re.findall(r'<code class="sourceCode python">(.*?)</code>', html, re.S))
    used = sorted({n for n in ("test_eq", "test_fail", "test_close", "test_ne") if f"{n}(" in code})
    if used and "fastcore.test import" not in code:   # a hidden import: a reader copying the example gets a NameError
        found.append(f"uses {', '.join(used)} but never shows `from fastcore.test import ...`")
    return found


def problems(m: dict, min_scale: float = 0.6) -> list:
    "What a reader would stumble on, from `measure`'s findings."
    found = []
    for t in m["tables"]:
        if not t.get("folded") and t["hidden"]:
            found.append(f"table of {t['cols']} columns: {len(t['hidden'])} scroll out of view: {t['hidden'][:8]}")
    for o in m["outputs"]:
        if not o["source"]: found.append(f"output {o['width']} px wide in {o['shown']} px: {o['start'][:60]!r}")
    for im in m["images"]:
        if im["wider"]: found.append(f"image wider than the column: {im['src']}")
        elif im["natural"] and im["shown"] / im["natural"] < min_scale:
            found.append(f"image shrunk to {im['shown'] / im['natural']:.0%} (text unreadable?): {im['src']}")
    for t in m["tex"]: found.append(f"unrendered TeX: {t!r}")
    return found


def screenshot(page: Path, out: Path, width: int = 1400, height: int = 2400):
    "A screenshot of `page`, `width` x `height` px, into `out`."
    out.parent.mkdir(parents=True, exist_ok=True)
    _run([f"--window-size={width},{height}", "--virtual-time-budget=5000", f"--screenshot={out}", page.as_uri()])
    if not out.exists(): raise RuntimeError(f"{page}: no screenshot written")


def pages(site: Path, names: list) -> list:
    "The pages named (files or folders, relative to the site), or every page."
    if not names: return sorted(p for p in site.rglob("*.html") if not p.name.startswith("."))
    found = []
    for n in names:
        p = site / n
        if p.is_dir(): found += sorted(q for q in p.rglob("*.html") if not q.name.startswith("."))
        elif p.exists(): found.append(p)
        else: raise FileNotFoundError(f"no page {n} in {site}")
    return found


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pages", nargs="*", help="pages or folders relative to the site (default: every page)")
    ap.add_argument("--site", type=Path, default=ROOT / "_docs", help="the built site (python tools/docs.py)")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "erasus-screenshots", help="where the screenshots go")
    ap.add_argument("--width", type=int, default=1400, help="window width in px")
    ap.add_argument("--max-height", type=int, default=16000, help="the tallest screenshot, px")
    ap.add_argument("--no-shots", action="store_true", help="measure only, take no screenshots")
    ap.add_argument("--json", type=Path, help="also write the findings, per page, to this file")
    args = ap.parse_args(argv)
    site = args.site.resolve()
    if not (site / "index.html").exists(): raise SystemExit(f"{site} holds no built site: run python tools/docs.py")
    report, bad = {}, 0
    for page in pages(site, args.pages):
        name = page.relative_to(site).as_posix()
        m = measure(page, args.width)
        found = static_checks(page, site) + problems(m)
        report[name] = dict(m, problems=found)
        if not args.no_shots:
            screenshot(page, args.out / name.replace(".html", ".png"), args.width, min(m["height"], args.max_height))
        bad += bool(found)
        wide = sum(o["source"] for o in m["outputs"])
        print(f"{'!!' if found else 'ok'} {name}: {m['height']} px tall, {len(m['tables'])} table(s), {len(m['images'])} image(s)"
              + (f", {wide} code cell(s) that scroll" if wide else ""))
        for f in found: print(f"     {f}")
    if args.json: args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"{len(report)} page(s), {bad} with problems" + ("" if args.no_shots else f"; screenshots in {args.out}"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
