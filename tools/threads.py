"""Time the README's Quick start `unlearn` at torch's default thread count, 1 thread and 2 threads, side by side.

Each thread count runs in a fresh process (torch's thread pool and its first-call start-up are per process): the first
call, then the median and range of `--repeats` more. `--load N` keeps N other processes spinning meanwhile, as on a
busy machine.

    python tools/threads.py                 # default, 1 and 2 threads
    python tools/threads.py --load 2        # the same beside two busy processes
    python tools/threads.py --threads 0,1,4 # 0: torch's default
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time


def child(threads: int, repeats: int) -> dict:
    "In this process: the Quick start's `unlearn` once, then `repeats` times; wall-clock seconds of each."
    import torch
    if threads: torch.set_num_threads(threads)
    from erasus import get_scenario, unlearn
    # 1. the Quick start, as the README has it (the scenario is cached; building it is not timed)
    sc = get_scenario("digits", "class", seed=0)
    model, forget, retain = sc.problem.model, sc.problem.forget, sc.problem.retain
    times = []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        unlearn(model, forget, retain, strategy="negative_gradient", fraction=0.5)
        times.append(time.perf_counter() - t)
    return dict(threads=torch.get_num_threads(), first=times[0], rest=times[1:])


def _spin():
    while True: pass


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="0,1,2", help="comma-separated thread counts; 0 is torch's default")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls after the first, per thread count")
    ap.add_argument("--load", type=int, default=0, help="busy processes running meanwhile")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.repeats)))
        return 0
    # 1. the load, if asked; then one fresh process per thread count
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.load)]
    for p in spinners: p.start()
    rows = []
    try:
        for n in [int(x) for x in args.threads.split(",")]:
            out = subprocess.run([sys.executable, __file__, "--child", str(n), "--repeats", str(args.repeats)],
                                 capture_output=True, text=True, check=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            rows.append((f"default ({r['threads']})" if n == 0 else str(n), r))
    finally:
        for p in spinners: p.terminate()
    # 2. side by side
    print(f"Quick start unlearn (digits class, negative_gradient, fraction=0.5); {os.cpu_count()} CPUs, "
          f"{args.load} busy processes; seconds")
    print(f"{'threads':<12}{'first call':>12}{'median':>10}{'min':>10}{'max':>10}")
    for name, r in rows:
        print(f"{name:<12}{r['first']:>12.3f}{statistics.median(r['rest']):>10.3f}{min(r['rest']):>10.3f}{max(r['rest']):>10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
