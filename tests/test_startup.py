"""Start-up (issue 9): unlearning that trains only through `optimise` never imports `torch._dynamo` (a second of
start-up; see `Optimiser` in core), and the one that per-example gradients pay is left out of the strategy's seconds.

Each case runs in a fresh interpreter, since the import is once per process."""
import json
import subprocess
import sys

SCRIPT = r"""
import json, sys, time, warnings
import torch
from torch import nn
from erasus.api import unlearn
from erasus.core import one_off_seconds
torch.set_num_threads(1); torch.manual_seed(0)
X, y = torch.randn(120, 6), torch.randint(0, 3, (120,))
model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    t = time.perf_counter(); res = unlearn(model, (X[:20], y[:20]), (X[20:], y[20:]), strategy=sys.argv[1]); wall = time.perf_counter() - t
print(json.dumps(dict(dynamo="torch._dynamo" in sys.modules, seconds=res.seconds, wall=wall, one_off=one_off_seconds())))
"""


def run(strategy: str) -> dict:
    p = subprocess.run([sys.executable, "-c", SCRIPT, strategy], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_optimise_alone_never_imports_dynamo():
    for strategy in ("gradient_ascent", "scrub"):
        assert run(strategy)["dynamo"] is False, strategy


def test_per_example_gradients_pay_dynamo_outside_the_strategys_seconds():
    r = run("ssd")   # SSD's Fisher diagonals are torch.func per-example gradients
    assert r["dynamo"] is True
    assert r["one_off"] > 0 and r["seconds"] + r["one_off"] <= r["wall"]
