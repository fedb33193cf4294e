"""Start-up benchmark: what `erasus bench digits ...` spends before any real work, piece by piece.

    python tools/startup.py              # 3 fresh processes per measurement, medians
    python tools/startup.py --repeats 7  # steadier medians on a busy machine

Every number comes from fresh Python processes (a second import in one process costs nothing), so each line is
what a new `erasus bench` process pays. The pieces, in the order a bench run meets them:

- `python -c "import torch"` (whole process, exit included): the reference the others are divided by, so that
  the ratios mean the same on a busy machine and a quiet one;
- `import torch`, then erasus's modules (`erasus.cli`, `erasus.bench`, every strategy and selector registered),
  and which of scikit-learn, scipy, pandas, matplotlib they pulled in (they should pull in none);
- each heavy library on its own, after torch: what importing it where it is used costs;
- `digits_data()` with an empty erasus cache (scikit-learn, load_digits, standardise, PCA) and again in a later
  process with the prepared tensors in the cache; then the scikit-learn modules the MIA metrics import at the
  first `evaluate` (a bench process pays them either way: with the data cached it pays them there instead),
  and what `prepare_digits` costs once those are loaded (what the cache saves a bench process: load_digits,
  PCA, and scikit-learn's datasets / decomposition / model_selection modules);
- `warmup()` (erasus's `Optimiser` steps, which call torch's functional updates and import no `torch._dynamo`) and
  `warm_func()` (the first `torch.func` gradient, which does import it); then, for comparison, what a
  `torch.optim.Adam` would pay: `import torch._dynamo` alone, the first constructor (which imports `torch._dynamo`:
  `Optimizer.add_param_group` is wrapped in `torch._disable_dynamo`, and every `step()` imports it too, whatever
  `foreach`/`fused`/`capturable` say), its first step, the first `torch.func` call;
- process exit: from the child's last line to its end, as the parent sees it, and the same with `os._exit`
  after flushing (what a fast exit would save).

A benchmark printout, not a test: nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HEAVY = ("sklearn", "scipy", "pandas", "matplotlib", "transformers", "peft", "optuna")
LIBS = {"scikit-learn (what digits_data uses)": "import sklearn.datasets, sklearn.decomposition, "
                                                 "sklearn.model_selection, sklearn.preprocessing",
        "scikit-learn (what the MIA metrics use)": "import sklearn.linear_model, sklearn.pipeline, sklearn.svm",
        "scipy.stats": "import scipy.stats",
        "pandas": "import pandas",
        "matplotlib.pyplot": "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot"}


# ---------------------------------------------------------------------------------------------------------- child
def _heavy() -> list:
    "Which heavy libraries are imported in this process."
    return [h for h in HEAVY if h in sys.modules]


def child(mode: str, arg: str | None) -> dict:
    "Run one measurement in this fresh process; return its seconds (and what it found)."
    clock, out = time.perf_counter, {}
    t = clock(); import torch; out["import torch"] = clock() - t
    torch.set_num_threads(1)
    if mode == "bench":                                     # the path `erasus bench digits` takes, in order
        t = clock()
        import erasus.bench, erasus.cli                     # noqa: F401
        from erasus.core import BENCHMARKS, SELECTORS, STRATEGIES
        for r in (STRATEGIES, SELECTORS, BENCHMARKS): r.names()
        out["erasus imports"] = clock() - t; out["heavy after erasus imports"] = _heavy()
        from erasus.benchmarks.digits import digits_data
        t = clock(); digits_data(); out["digits_data()"] = clock() - t
        out["heavy after digits_data"] = _heavy()
        t = clock(); exec(LIBS["scikit-learn (what the MIA metrics use)"], {}); out["metrics' sklearn"] = clock() - t
        from erasus.core import warm_func, warmup
        t = clock(); warmup(); out["warmup()"] = clock() - t
        out["dynamo after warmup"] = "torch._dynamo" in sys.modules
        t = clock(); warm_func(); out["warm_func()"] = clock() - t
    elif mode == "exit":                                    # what exit costs once torch._dynamo is loaded, and os._exit
        import erasus.bench, erasus.cli, torch._dynamo      # noqa: F401
        if arg == "os._exit":
            print(json.dumps(dict(out, end=time.time()))); sys.stdout.flush(); os._exit(0)
    elif mode == "digits-after-metrics":                    # what digits_data adds once the metrics' sklearn is loaded
        exec(LIBS["scikit-learn (what the MIA metrics use)"], {})
        from erasus.benchmarks.digits import prepare_digits
        t = clock(); prepare_digits(); out["prepare_digits"] = clock() - t
    elif mode == "lib":                                     # one heavy library, after torch
        t = clock(); exec(arg, {}); out["lib"] = clock() - t
    elif mode == "warmup-parts":                            # what warmup pays for, piece by piece
        from torch import nn
        m = nn.Linear(2, 2)
        if arg == "dynamo-first":
            t = clock(); import torch._dynamo; out["import torch._dynamo"] = clock() - t  # noqa: F401
        kwargs = json.loads(arg) if arg and arg.startswith("{") else {}
        t = clock(); o = torch.optim.Adam(m.parameters(), lr=0.1, **kwargs); out["first Adam(...)"] = clock() - t
        out["dynamo after constructor"] = "torch._dynamo" in sys.modules
        if kwargs: return dict(out, end=time.time())       # capturable=True cannot step on a CPU
        m(torch.zeros(1, 2)).sum().backward()
        t = clock(); o.step(); out["first step"] = clock() - t
        t = clock()
        for opt in (torch.optim.AdamW, torch.optim.SGD):
            o = opt(m.parameters(), lr=0.1); m(torch.zeros(1, 2)).sum().backward(); o.step()
        out["AdamW + SGD"] = clock() - t
        t = clock()
        from torch.func import functional_call, grad, vmap
        params = {k: v.detach() for k, v in m.named_parameters()}
        vmap(grad(lambda p, x: functional_call(m, p, (x,)).sum()), in_dims=(None, 0))(params, torch.zeros(3, 1, 2))
        out["first torch.func call"] = clock() - t
    out["end"] = time.time()
    return out


# --------------------------------------------------------------------------------------------------------- parent
def run(mode: str, arg: str | None = None, env: dict | None = None) -> dict:
    "One fresh child process: its measurements, plus its wall time and exit time as seen from here."
    # -P: the script's folder (tools/) must never shadow the standard library
    cmd = [sys.executable, "-P", __file__, "--child", mode] + ([arg] if arg is not None else [])
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    t1 = time.time()
    if p.returncode: raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    return dict(out, wall=t1 - t0, exit=t1 - out.pop("end"))


def reference() -> float:
    "Wall seconds of `python -c 'import torch'`."
    t0 = time.time(); subprocess.run([sys.executable, "-c", "import torch"], check=True); return time.time() - t0


def median(runs: list, key: str) -> float: return statistics.median(r[key] for r in runs)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="fresh processes per measurement (medians are printed)")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child: print(json.dumps(child(a.child[0], a.child[1] if len(a.child) > 1 else None))); return
    R, rows = a.repeats, []
    ref = statistics.median(reference() for _ in range(R))
    def line(name, s, note=""):
        rows.append((name, s)); print(f"{name:<58} {s:7.3f} s  {s / ref:5.2f}x ref  {note}")
    print(f"reference: python -c 'import torch' (whole process)        {ref:7.3f} s   1.00x ref   (medians of {R})\n")
    # 1. the bench path, with an empty cache and then with the prepared data in it
    with tempfile.TemporaryDirectory() as cache:
        env = dict(ERASUS_CACHE=cache)
        cold = [run("bench", env=env) for _ in range(1)]
        warm = [run("bench", env=env) for _ in range(R)]
        for _ in range(R - 1):                              # each cold run needs an empty cache of its own
            with tempfile.TemporaryDirectory() as c2: cold.append(run("bench", env=dict(ERASUS_CACHE=c2)))
    line("import torch", median(warm, "import torch"))
    line("erasus imports (cli, bench, every registry)", median(warm, "erasus imports"),
         f"heavy libraries imported: {warm[0]['heavy after erasus imports'] or 'none'}")
    line("digits_data(), empty cache", median(cold, "digits_data()"),
         f"heavy libraries after it: {cold[0]['heavy after digits_data'] or 'none'}")
    line("digits_data(), prepared tensors cached", median(warm, "digits_data()"),
         f"heavy libraries after it: {warm[0]['heavy after digits_data'] or 'none'}")
    line("then the metrics' scikit-learn (first evaluate), empty cache", median(cold, "metrics' sklearn"))
    line("then the metrics' scikit-learn (first evaluate), data cached", median(warm, "metrics' sklearn"))
    line("digits' own work once the metrics' scikit-learn is loaded", median(
        [run("digits-after-metrics") for _ in range(R)], "prepare_digits"), "what the cache saves a bench process")
    line("warmup()", median(warm, "warmup()"), f"torch._dynamo imported: {warm[0]['dynamo after warmup']}")
    line("warm_func(), first per-example gradient", median(warm, "warm_func()"), "imports torch._dynamo")
    line("process exit", median(warm, "exit"))
    line("whole child process (bench path, cached data)", median(warm, "wall"))
    line("process exit, torch._dynamo loaded", median([run("exit") for _ in range(R)], "exit"))
    line("process exit by os._exit after flushing", median([run("exit", "os._exit") for _ in range(R)], "exit"))
    # 2. each heavy library on its own, after torch
    print()
    for name, code in LIBS.items(): line(f"import {name}", median([run("lib", code) for _ in range(R)], "lib"))
    # 3. what torch.optim's Adam would pay (erasus's `Optimiser` avoids it)
    print()
    parts = [run("warmup-parts") for _ in range(R)]
    for k in ("first Adam(...)", "first step", "AdamW + SGD", "first torch.func call"):
        line(f"warmup: {k}", median(parts, k), "imports torch._dynamo" if k == "first Adam(...)" else "")
    first = [run("warmup-parts", "dynamo-first") for _ in range(R)]
    line("import torch._dynamo alone", median(first, "import torch._dynamo"))
    line("first Adam(...) once torch._dynamo is imported", median(first, "first Adam(...)"))
    for kw in ('{"foreach": false}', '{"fused": true}', '{"capturable": true}'):
        r = [run("warmup-parts", kw) for _ in range(R)]
        line(f"first Adam(..., {kw[1:-1]})", median(r, "first Adam(...)"),
             f"torch._dynamo imported: {r[0]['dynamo after constructor']}")


if __name__ == "__main__": main()
