"""Start-up (issue 9): unlearning that trains only through `optimise` never imports `torch._dynamo` (a second of
start-up; see `Optimiser` in core), nor do per-example gradients of a plain stack of linear layers (`linear_grads`);
the import that torch.func's per-example gradients pay on other models is left out of the strategy's seconds.

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
class Own(nn.Module):   # a custom forward: per-example gradients go through torch.func
    def __init__(self): super().__init__(); self.a, self.b = nn.Linear(6, 16), nn.Linear(16, 3)
    def forward(self, x): return self.b(torch.relu(self.a(x)))
model = Own() if sys.argv[2] == "own" else nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    t = time.perf_counter(); res = unlearn(model, (X[:20], y[:20]), (X[20:], y[20:]), strategy=sys.argv[1]); wall = time.perf_counter() - t
print(json.dumps(dict(dynamo="torch._dynamo" in sys.modules, seconds=res.seconds, wall=wall, one_off=one_off_seconds())))
"""


def run(strategy: str, model: str = "sequential") -> dict:
    p = subprocess.run([sys.executable, "-c", SCRIPT, strategy, model], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_optimise_alone_never_imports_dynamo():
    for strategy in ("gradient_ascent", "scrub", "ssd"):   # ssd: per-example gradients as input x output-gradient products
        assert run(strategy)["dynamo"] is False, strategy


def test_per_example_gradients_pay_dynamo_outside_the_strategys_seconds():
    r = run("ssd", "own")   # SSD's Fisher diagonals of a custom model are torch.func per-example gradients
    assert r["dynamo"] is True
    assert r["one_off"] > 0 and r["seconds"] + r["one_off"] <= r["wall"]
