"""The caller's model is theirs (issue 8 item 5): flags, frozen parameters and failures never change it."""
import pytest
import torch
from torch import nn

from erasus.api import unlearn
from erasus.core import STRATEGIES, model_flags, snapshot
from erasus.data import Problem
from erasus.metrics import evaluate

NAMES = [e.name for e in STRATEGIES.list(kinds="classification")]


def mixed_model(seed=0):
    "A training-mode MLP holding a frozen (eval-mode) batch norm, an MC-dropout left in train mode, and a frozen layer."
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(32, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 64), nn.ReLU(),
                      nn.Linear(64, 10)).train()
    m[1].eval()
    m[0].weight.requires_grad_(False)
    return m


def test_problem_and_metrics_keep_every_flag(small):
    m = mixed_model()
    flags, before = model_flags(m), snapshot(m)
    p = Problem(m, small.forget, small.retain, test=small.test)
    evaluate(m, p)
    assert model_flags(m) == flags
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_eval_inside_train_and_train_inside_eval():
    m = mixed_model().eval()
    m[3].train()                                          # MC dropout inside an eval model
    flags = model_flags(m)
    from erasus.core import eval_mode
    with eval_mode(m): pass
    assert model_flags(m) == flags


@pytest.mark.parametrize("name", NAMES)
def test_mixed_model_untouched_also_when_unlearning_fails(name, small):
    m = mixed_model()
    flags, before = model_flags(m), snapshot(m)
    for kw in ({}, dict(nope_not_a_hparam=1)):            # a run, and a run that raises
        try: unlearn(m, small.forget, small.retain, strategy=name, test=small.test, **kw)
        except (TypeError, ValueError, RuntimeError, FloatingPointError): pass
        assert model_flags(m) == flags, f"{name} changed the caller's flags"
        assert all(torch.equal(before[k], v) for k, v in m.state_dict().items()), f"{name} changed the caller's weights"


@pytest.mark.parametrize("name", NAMES)
def test_frozen_parameters_stay_frozen(name, small):
    "A parameter with requires_grad=False is not moved by unlearning (the result keeps it bit for bit)."
    m = mixed_model()
    try: res = unlearn(m, small.forget, small.retain, strategy=name, test=small.test)
    except (TypeError, ValueError) as err:
        assert str(err); return                           # a clear refusal is fine
    frozen = [(n, q) for n, q in res.model.named_parameters() if n == "0.weight" or n.endswith(".0.weight")]
    assert frozen, f"{name}: no copy of the frozen layer found in the result"
    for n, q in frozen:   # ensembles (sisa) hold one copy per member
        assert torch.equal(q, m[0].weight), f"{name} moved the frozen weight ({n})"


@pytest.mark.parametrize("name", NAMES)
def test_fully_frozen_model_is_refused_clearly(name, small):
    "With nothing trainable, a strategy refuses with a clear error rather than changing frozen weights or doing nothing."
    m = mixed_model().requires_grad_(False)
    with pytest.raises((ValueError, TypeError)) as info:
        unlearn(m, small.forget, small.retain, strategy=name, test=small.test)
    assert "torch.optim" not in str(info.value) and "empty parameter list" not in str(info.value), str(info.value)


@pytest.fixture(scope="module")
def float64_problem():
    "A float64 model trained on float64 data (3 classes), class 0 to forget."
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3)).double()
    X = torch.randn(400, 8, dtype=torch.float64); y = (X[:, 0] > 0).long() + (X[:, 1] > 0).long()
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    for _ in range(100): opt.zero_grad(); nn.functional.cross_entropy(m(X[:300]), y[:300]).backward(); opt.step()
    tr = torch.arange(300)
    return m, (X[tr][y[:300] == 0], y[:300][y[:300] == 0]), (X[tr][y[:300] != 0], y[:300][y[:300] != 0]), (X[300:], y[300:])


@pytest.mark.parametrize("name", NAMES)
def test_float64_models_work(name, float64_problem):
    "Every strategy runs on a float64 model (no 'both inputs should have same dtype'), and its result stays float64."
    if "trajectory" in str(STRATEGIES.get(name)[0].extra.get("needs", "")): pytest.skip("needs a training trajectory: float64 covered in tests/test_trajectory.py")
    m, forget, retain, test = float64_problem
    res = unlearn(m, forget, retain, strategy=name, test=test)
    assert all(p.dtype == torch.float64 for p in res.model.parameters()), f"{name} changed the model's dtype"
    assert res.forget_acc is not None and 0 <= res.forget_acc <= 1
