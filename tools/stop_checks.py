"""What the oracle-level stop checks cost, exact (after every step) against the adaptive schedule, side by side.

    python tools/stop_checks.py                      # digits class and random, the default-stopping strategies
    python tools/stop_checks.py --seeds 0 1 2 --strategies gradient_ascent npo

For each run it prints where each rule stopped, the forget accuracy and `reached` that `unlearn` reports, the rows the
checks evaluated against the rows trained on (`examples_seen`), and the CPU seconds spent in checks against the
strategy's CPU seconds (process time, which other processes' load does not inflate as it does wall time; the fastest
of `--repeats` runs). Both rules run in one process, one after the other.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings

# this folder is not a package: drop it from the path, so that a tools/ script named like a standard module
# (a tools/ script named like a standard module) cannot shadow it
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import torch  # noqa: E402

STRATEGIES = ("gradient_ascent", "negative_gradient", "npo", "simnpo", "wga", "undial", "rmu", "scrub", "random_label",
              "saliency_unlearning", "knowledge_distillation", "lora")


def timed(spent: dict, key: str, fn):
    "`fn`, adding the CPU seconds each call takes to `spent[key]`."
    def wrapped(*args, **kwargs):
        t0 = time.process_time()
        try: return fn(*args, **kwargs)
        finally: spent[key] += time.process_time() - t0
    return wrapped


def timed_checks() -> dict:
    "Time every `StopRule` call and every registered strategy's run, in CPU seconds, into the returned dict."
    from erasus import budgets
    from erasus.core import STRATEGIES
    spent = dict(s=0.0, strategy=0.0)
    budgets.StopRule.__call__ = timed(spent, "s", budgets.StopRule.__call__)
    for name in STRATEGIES.names():
        entry = STRATEGIES.get(name)[0]
        entry.fn = timed(spent, "strategy", entry.fn)
    return spent


def run(problem, strategy: str, exact: bool, spent: dict, repeats: int = 3) -> dict:
    "`unlearn` with the exact or the adaptive rule: where it stopped, what the checks cost (seconds: the fastest of `repeats`)."
    from erasus.api import unlearn
    from erasus.budgets import exact_stops
    best = None
    for _ in range(repeats):
        spent["s"] = spent["strategy"] = 0.0
        with warnings.catch_warnings(), (exact_stops() if exact else contextlib.nullcontext()):
            warnings.simplefilter("ignore")
            r = unlearn(problem, None, None, strategy=strategy)
        if best is None or spent["strategy"] < best[2]: best = (r, spent["s"], spent["strategy"])
    r, check_s, seconds = best
    log = r.log
    return dict(steps=r.steps, reached=r.reached, forget_acc=r.forget_acc, checks=log.get("stop_checks", 0),
                rows=log.get("stop_rows", 0), seen=r.examples_seen or 0, check_s=check_s, seconds=seconds)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategies", nargs="*", default=list(STRATEGIES))
    ap.add_argument("--scenarios", nargs="*", default=["class", "random"])
    ap.add_argument("--seeds", nargs="*", type=int, default=[0])
    ap.add_argument("--repeats", type=int, default=3, help="runs per rule; the fastest one's seconds are shown")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from erasus.bench import get_scenario
    spent = timed_checks()
    head = (f"{'scenario':8} {'seed':>4} {'strategy':24} {'steps':>11} {'reached':>11} {'forget acc':>13} "
            f"{'checks':>9} {'check rows/trained':>19} {'check/strategy CPU s':>19}")
    print(head + "\n" + "-" * len(head))
    tot = dict(exact_rows=0, new_rows=0, seen_e=0, seen_n=0, exact_s=0.0, new_s=0.0, sec_e=0.0, sec_n=0.0)
    for seed in args.seeds:
        for scn in args.scenarios:
            problem = get_scenario("digits", scn, seed=seed).problem
            run(problem, args.strategies[0], False, spent, 1)        # warm caches, so the first row is not slower
            for name in args.strategies:
                e, n = run(problem, name, True, spent, args.repeats), run(problem, name, False, spent, args.repeats)
                pair = lambda k, f: f"{f(e[k])}/{f(n[k])}"
                print(f"{scn:8} {seed:>4} {name:24} {pair('steps', str):>11} {pair('reached', str):>11} "
                      f"{pair('forget_acc', lambda v: f'{v:.3f}'):>13} {pair('checks', str):>9} "
                      f"{e['rows'] / max(e['seen'], 1):>9.2f}/{n['rows'] / max(n['seen'], 1):<9.2f} "
                      f"{e['check_s'] / e['seconds']:>9.0%}/{n['check_s'] / n['seconds']:<9.0%}")
                for k, r in (("e", e), ("n", n)):
                    tot[("exact" if k == "e" else "new") + "_rows"] += r["rows"]; tot["seen_" + k] += r["seen"]
                    tot[("exact" if k == "e" else "new") + "_s"] += r["check_s"]; tot["sec_" + k] += r["seconds"]
    print(f"\nall runs (exact/adaptive): check rows / trained rows {tot['exact_rows'] / tot['seen_e']:.2f}/"
          f"{tot['new_rows'] / tot['seen_n']:.2f}; check CPU seconds / strategy CPU seconds "
          f"{tot['exact_s'] / tot['sec_e']:.0%}/{tot['new_s'] / tot['sec_n']:.0%}")


if __name__ == "__main__":
    main()
