"""Scaling benchmark: each registered selector's seconds and peak memory as the forget set grows, and per-example
gradients (the input x output-gradient products erasus uses for linear stacks, and torch.func) against a Python loop.

    python tools/scaling.py                 # n = 1k, 3k, 10k, 30k forget examples, k = 0.2 n, every selector
    python tools/scaling.py --quick         # n = 1k, 3k only
    python tools/scaling.py --selectors submodular craig --sizes 1000 10000 --timeout 60

The forget set is synthetic: a random MLP 32-64-10 on random 32-dim inputs (the penultimate features are 64-dim),
with a retain set of the same size. Each (selector, n) runs in its own subprocess, so one selector's memory never
counts against another's; peak memory is the rise of the process's resident set (VmHWM, reset just before the
call) over what it held before, so it leaves out torch itself and the problem's data. A run that passes --timeout
or --memory (GiB, an address-space limit) is reported as such, not waited for. Each row also records the CPU seconds
of the call (`cpu_s`; `--cpu` tabulates them instead of wall seconds): on a machine shared with other work the wall
time of a single-threaded call grows with the load, its CPU time much less.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SIZES = (1000, 3000, 10000, 30000)


def _rss_kib(field: str) -> int:
    "A field of /proc/self/status (VmRSS, VmHWM) in KiB; 0 where there is no /proc."
    try:
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"): return int(line.split()[1])
    except OSError: pass
    return 0


def _reset_peak() -> bool:
    "Reset the process's peak resident set (Linux >= 4.0); False where that is not possible."
    try:
        with open("/proc/self/clear_refs", "w") as f: f.write("5")
        return True
    except OSError: return False


def make_problem(n: int, seed: int = 0):
    "A synthetic Problem: a random MLP 32-64-10, n random 32-dim forget rows and n retain rows, labels = its predictions (mostly)."
    import torch
    from torch import nn
    from erasus.data import Problem
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10)).eval()
    x = torch.randn(2 * n, 32, generator=g)
    with torch.no_grad(): y = model(x).argmax(1)
    flip = torch.rand(2 * n, generator=g) < 0.2                              # some wrong labels, so losses differ
    y = torch.where(flip, torch.randint(10, (2 * n,), generator=g), y)
    return Problem(model, (x[:n], y[:n]), (x[n:], y[n:]), batch_size=256, seed=seed, check_overlap=False)


def child(name: str, n: int, memory_gib: float | None) -> dict:
    "Run one selector at one size in this process; the row as a dict."
    import resource
    import torch
    torch.set_num_threads(int(os.environ.get("SCALING_THREADS", "1")))
    from erasus.api import select
    p = make_problem(n)
    k = max(1, round(0.2 * n))
    try: select(p, name, k=max(1, min(k, 10)) if name != "full" else n)     # warm-up on the same problem (imports, first calls)
    except ValueError as err:                                               # a selector that refuses this size, or this problem
        return dict(selector=name, n=n, k=k, seconds=float("nan"), cpu_s=float("nan"), peak_mib=float("nan"),
                    status="refused: " + str(err).splitlines()[0][:120])
    if memory_gib:
        lim = int(memory_gib * 2 ** 30)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    reset = _reset_peak()
    before = _rss_kib("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        sel = select(p, name, k=k if name != "full" else n)
        status = "ok" if sel.k == (k if name != "full" else n) else "wrong k"
    except MemoryError: status = "out of memory"
    except (RuntimeError, ValueError) as err:
        status = ("out of memory" if "memory" in str(err).lower() or "alloc" in str(err).lower()
                  else "refused: " + str(err).splitlines()[0][:120])
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _rss_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return dict(selector=name, n=n, k=k, seconds=seconds, cpu_s=cpu, peak_mib=max(0, peak - before) / 1024, status=status)


def run_one(name: str, n: int, timeout: float, memory_gib: float | None) -> dict:
    "Run `child` in a fresh interpreter, with a wall-clock limit."
    cmd = [sys.executable, __file__, "--child", name, str(n)] + (["--memory", str(memory_gib)] if memory_gib else [])
    try: out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(selector=name, n=n, k=round(0.2 * n), seconds=float("nan"), peak_mib=float("nan"), status=f"> {timeout:g} s")
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode or not lines:
        why = (out.stderr.strip().splitlines() or ["no output"])[-1][:120]
        return dict(selector=name, n=n, k=round(0.2 * n), seconds=float("nan"), peak_mib=float("nan"), status="failed: " + why)
    return json.loads(lines[-1])


def per_example_gradients(n: int = 2000, repeats: int = 3) -> dict:
    "Seconds for the per-example gradients of an MLP 32-64-64-10 on n rows: erasus's two routes against a Python loop."
    import torch
    from torch import nn
    from erasus.core import per_example_grads
    from erasus.tasks import ClassificationTask
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    data = (torch.randn(n, 32), torch.randint(10, (n,)))
    task = ClassificationTask(10)
    class OwnLoss(ClassificationTask):                                         # the same loss, which sends it to torch.func
        def per_sample_loss(self, model, batch): return super().per_sample_loss(model, batch)
    def products(): return [g for g in per_example_grads(model, task, data)]
    def func(): return [g for g in per_example_grads(model, OwnLoss(10), data)]
    def loop():
        out = []
        for i in range(n):
            model.zero_grad()
            task.per_sample_loss(model, (data[0][i:i + 1], data[1][i:i + 1])).sum().backward()
            out.append({m: p.grad.clone() for m, p in model.named_parameters()})
        return out
    def best(f):
        f()                                                                   # warm-up
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
        return min(ts)
    a, f, b = products(), func(), loop()
    same = all(torch.allclose(x[0][m][:5], torch.stack([b[j][m] for j in range(5)]), atol=1e-6) for x in (a, f) for m in a[0])
    tp, tf, tl = best(products), best(func), best(loop)
    return dict(n=n, products_s=tp, torch_func_s=tf, loop_s=tl, speedup=tl / tp, func_speedup=tl / tf, same=same)


def table(rows: list, sizes: list, key: str = "seconds") -> str:
    "The rows as a text table: one line per selector, seconds (wall, or `key`) and peak MiB per size."
    names = list(dict.fromkeys(r["selector"] for r in rows))
    cell = {(r["selector"], r["n"]): r for r in rows}
    head = f"{'selector':<18}" + "".join(f"{'n=' + str(n):>22}" for n in sizes)
    lines = [head, f"{'':<18}" + "".join(f"{'s':>10}{'MiB':>12}" for _ in sizes), "-" * len(head)]
    notes = []
    for name in names:
        parts = []
        for n in sizes:
            r = cell.get((name, n))
            if r is None: parts.append(f"{'-':>10}{'-':>12}")
            elif r["status"] == "ok": parts.append(f"{r.get(key, float('nan')):>10.2f}{r['peak_mib']:>12.0f}")
            else:
                parts.append(f"{'(' + str(len(notes) + 1) + ')':>10}{'':>12}")
                notes.append(f"({len(notes) + 1}) {name} at n={n}: {r['status']}")
        lines.append(f"{name:<18}" + "".join(parts))
    return "\n".join(lines + [""] + notes)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n = 1k and 3k only")
    ap.add_argument("--sizes", type=int, nargs="+", help=f"forget-set sizes (default {SIZES})")
    ap.add_argument("--selectors", nargs="+", help="selector names or presets (default: every registered selector)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds allowed per (selector, n); default 120")
    ap.add_argument("--memory", type=float, default=None, help="GiB of address space allowed per (selector, n)")
    ap.add_argument("--no-grads", action="store_true", help="skip the per-example gradient comparison")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    ap.add_argument("--cpu", action="store_true", help="tabulate CPU seconds of the call instead of wall seconds")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.child[0], int(a.child[1]), a.memory)))
        return
    from erasus.core import SELECTORS
    sizes = a.sizes or (SIZES[:2] if a.quick else SIZES)
    names = a.selectors or SELECTORS.names()
    rows = []
    for name in names:
        slow = False
        for n in sizes:
            if slow:                                                          # it already ran out of time on a smaller n
                rows.append(dict(selector=name, n=n, k=round(0.2 * n), seconds=float("nan"), peak_mib=float("nan"),
                                 status="skipped (timed out at a smaller n)"))
                continue
            r = run_one(name, n, a.timeout, a.memory)
            rows.append(r)
            slow = r["status"].startswith(">")
            print(f"  {name:<18} n={n:<6} {r['status']:<8} {r['seconds']:8.2f} s {r.get('cpu_s', float('nan')):8.2f} cpu s "
                  f"{r['peak_mib']:8.0f} MiB", file=sys.stderr, flush=True)
    what = "CPU seconds" if a.cpu else "seconds"
    print(f"\nSelectors, k = 0.2 n ({what} of the select call; peak MiB above the process's resident set before it)\n")
    print(table(rows, sizes, "cpu_s" if a.cpu else "seconds"))
    if not a.no_grads:
        import torch
        torch.set_num_threads(int(os.environ.get("SCALING_THREADS", "1")))
        g = per_example_gradients(2000)
        print(f"\nPer-example gradients, MLP 32-64-64-10, n = {g['n']}: products {g['products_s'] * 1e3:.0f} ms "
              f"({g['speedup']:.1f}x the loop), torch.func {g['torch_func_s'] * 1e3:.0f} ms ({g['func_speedup']:.1f}x), "
              f"Python loop {g['loop_s'] * 1e3:.0f} ms (same values: {g['same']})")
    if a.json:
        with open(a.json, "w") as f: json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
