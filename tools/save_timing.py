"""Where a bench run's time goes, and what saving a row costs as the results file grows.

    python tools/save_timing.py                       # saving a row at 20, 2,000 and 20,000 rows already in the file
    python tools/save_timing.py --sizes 20 20000 --repeats 50
    python tools/save_timing.py --bench digits --scenario original --strategies knowledge_distillation --selectors random,kmeans --fractions 0.2 --seeds 1

Saving a row: each finished row is appended as one line to the results file's journal and flushed to disk (`fsync`),
against the way rows were saved before, the whole file merged and rewritten after every row (`save_results` of
`merge_results`). Both are timed on the same file, side by side, at each size; the rows are copies of one real row
(from `results/digits_strategies.json` where there is one). The last column is the one-off compaction at the end of
a run (a merge and one atomic rewrite of the file).

`--bench ...` runs `erasus bench ... --profile --no-progress` in a fresh process and prints its profile: start-up,
models, selection, unlearning, evaluation, writing, in seconds and shares of the wall time.

A benchmark printout, not a test: nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ERASUS = [sys.executable, "-c", "from erasus.cli import command; command()"]


def a_row() -> dict:
    "A real row of a results file, or one with the same fields."
    f = ROOT / "results" / "digits_strategies.json"
    try: return next(r for r in json.loads(f.read_text())["rows"] if r.get("strategy") not in ("base", "retrain"))
    except (OSError, ValueError, StopIteration, KeyError):
        return dict(benchmark="digits", scenario="class", seed=0, strategy="npo", selector="random", fraction=0.2,
                    variant="default", budget_mode="equal-steps", k=29, n_forget=142, hparams=dict(lr=1e-3, beta=0.1),
                    selector_hparams={}, steps=40, examples_seen=2560, target=0.0, target_basis="forgotten class",
                    reached=True, warnings=[], status="ok", error=None, forget_acc=0.0, retain_acc=0.99, test_acc=0.88,
                    test_acc_kept=0.97, forget_loss=5.1, retain_loss=0.03, test_loss=0.6, mia=0.5, mia_svc=0.4,
                    seconds=0.1, select_seconds=0.001, indices=list(range(29)), avg_gap=0.02, speedup=9.0,
                    options=dict(forget_class=0), config_hash="0" * 16, run="run0")


def save_costs(n: int, repeats: int) -> dict:
    "Median seconds to save one row into a results file of `n` rows: journal line, full rewrite, final compaction."
    from erasus.bench import Journal, merge_results, save_results
    row, run = a_row(), dict(id="profile", command="tools/save_timing.py")
    rows = [dict(row, seed=1000 + i, run="old") for i in range(n)]
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "r.json"
        disk = dict(provenance=dict(runs=[dict(id="old")]), rows=rows)
        save_results(out, disk)
        # 1. today's way: a journal line per row, fsync'd
        j, jt = Journal(out, run), []
        for i in range(repeats):
            t = time.perf_counter(); j.append([dict(row, seed=i, run="profile")]); jt.append(time.perf_counter() - t)
        j.close()
        # 2. the way before: the file merged with the run's rows and rewritten whole after every row
        mine, ft = [], []
        for i in range(max(3, repeats // 10) if n > 2000 else repeats):
            mine.append(dict(row, seed=i, run="profile"))
            t = time.perf_counter(); save_results(out, merge_results(disk, mine, run)); ft.append(time.perf_counter() - t)
        # 3. the end of a run: one merge and one rewrite
        t = time.perf_counter(); save_results(out, merge_results(disk, mine, run)); compact = time.perf_counter() - t
    return dict(journal=statistics.median(jt), rewrite=statistics.median(ft), compact=compact)


def print_saves(sizes, repeats: int) -> None:
    print(f"saving one row (median of {repeats} journal appends; full rewrites: {repeats}, or {max(3, repeats // 10)} above 2,000 rows)")
    print(f"{'rows in file':>12}  {'journal line':>12}  {'full rewrite':>12}  {'rewrite/line':>12}  {'compaction at end':>17}")
    costs = {n: save_costs(n, repeats) for n in sizes}
    for n, c in costs.items():
        print(f"{n:>12,}  {c['journal'] * 1e3:>9.2f} ms  {c['rewrite'] * 1e3:>9.2f} ms  {c['rewrite'] / c['journal']:>11.1f}x"
              f"  {c['compact'] * 1e3:>14.1f} ms")
    lo, hi = min(sizes), max(sizes)
    print(f"{hi:,} rows against {lo:,}: journal line {costs[hi]['journal'] / costs[lo]['journal']:.2f}x, "
          f"full rewrite {costs[hi]['rewrite'] / costs[lo]['rewrite']:.0f}x (constant time means about 1x)")


def print_bench(args: list) -> int:
    "Run `erasus bench ARGS --profile` in a fresh process and print its profile."
    t = time.perf_counter()
    p = subprocess.run([*ERASUS, "bench", *args, "--profile", "--no-progress"], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t
    prof = p.stderr.split("where the time went")
    print(f"erasus bench {' '.join(args)} --profile: exit {p.returncode}, {wall:.2f} s wall as the parent sees it (exit included)")
    print("where the time went" + prof[1] if len(prof) > 1 else p.stderr[-3000:])
    return p.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 2000, 20000], help="rows already in the results file")
    ap.add_argument("--repeats", type=int, default=30, help="saves timed per size")
    ap.add_argument("--bench", nargs=argparse.REMAINDER, help="arguments of `erasus bench` to profile instead")
    a = ap.parse_args()
    if a.bench: return print_bench(a.bench)
    print_saves(a.sizes, a.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
