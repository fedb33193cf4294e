"""Reference checks of the published metrics: SalUn's SVC membership-inference attack, test accuracy without the
forgotten class, and the Avg. Gap over them, against direct computations written out here."""
import numpy as np
import pytest
import torch
from sklearn.svm import SVC
from torch import nn

from erasus.data import Problem
from erasus import metrics as em  # not `from ... import test_acc`: pytest would collect the metrics as tests
from erasus.metrics import DEFAULT_METRICS, GAP_METRICS, avg_gap, evaluate, mia_svc, svc_mia
from erasus.models import MLP, train
from erasus.tasks import ClassificationTask


def blobs(n=600, seed=0):
    "Four Gaussian blobs in 2-D, labels 0..3."
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[0., 3.], [3., 0.], [-3., 0.], [0., -3.]])
    y = torch.arange(n) % 4
    return centers[y] + torch.randn(n, 2, generator=g), y


@pytest.fixture(scope="module")
def setting():
    "A model trained on everything, one trained without class 0, and the problem that forgets class 0."
    torch.manual_seed(0)
    X, y = blobs()
    tr, te = torch.arange(450), torch.arange(450, 600)
    f, r = tr[y[tr] == 0], tr[y[tr] != 0]
    full, oracle = MLP(2, 16, 4), MLP(2, 16, 4)
    train(full, ClassificationTask(4), (X[tr], y[tr]), epochs=20, lr=1e-2)
    train(oracle, ClassificationTask(4), (X[r], y[r]), epochs=20, lr=1e-2)
    return full, oracle, X, y, f, r, te


def confidence(model, data):
    "Softmax probability of each label, in float64."
    with torch.no_grad(): return torch.softmax(model(data[0]).double(), -1)[torch.arange(len(data[1])), data[1]].numpy()


def direct_efficacy(model, member, nonmember, forget):
    "The attack of Jia et al. / SalUn written out: SVC(C=3, gamma='auto', rbf) on confidence; share called non-member."
    xm, xn = confidence(model, member), confidence(model, nonmember)
    clf = SVC(C=3, gamma="auto", kernel="rbf").fit(np.r_[xm, xn].reshape(-1, 1), np.r_[np.ones(len(xm)), np.zeros(len(xn))])
    return 1 - clf.predict(confidence(model, forget).reshape(-1, 1)).mean()


def test_mia_svc_matches_sklearn_when_retain_is_subsampled(setting):
    full, oracle, X, y, f, r, te = setting
    p = Problem(full, (X[f], y[f]), (X[r], y[r]), test=(X[te], y[te]))
    n = len(te)
    assert n < len(r)
    sub = torch.randperm(len(r), generator=torch.Generator().manual_seed(0))[:n]  # members: a seeded subset of retain
    for model in (full, oracle):
        want = direct_efficacy(model, (X[r][sub], y[r][sub]), (X[te], y[te]), (X[f], y[f]))
        assert abs(mia_svc(model, p) - want) < 1e-9
    assert 0 < mia_svc(full, p) < 1 and mia_svc(oracle, p) == 1.0  # a value strictly inside (0, 1): the check has teeth


def test_mia_svc_matches_sklearn_when_test_is_subsampled(setting):
    full, oracle, X, y, f, r, te = setting
    r_small = r[:60]
    p = Problem(full, (X[f], y[f]), (X[r_small], y[r_small]), test=(X[te], y[te]))
    sub = torch.randperm(len(te), generator=torch.Generator().manual_seed(0))[:60]  # non-members: a seeded subset of test
    want = direct_efficacy(full, (X[r_small], y[r_small]), (X[te][sub], y[te][sub]), (X[f], y[f]))
    assert abs(mia_svc(full, p) - want) < 1e-9
    assert mia_svc(full, p) == evaluate(full, p, ("mia_svc",))["mia_svc"]  # deterministic, and the same through evaluate


def test_svc_mia_on_separable_confidences():
    members, nonmembers = np.linspace(0.9, 1.0, 30), np.linspace(0.05, 0.4, 30)
    assert svc_mia(members, nonmembers, [0.99, 0.95, 0.92]) == 0.0
    assert svc_mia(members, nonmembers, [0.1, 0.2, 0.3, 0.98]) == 0.75
    with pytest.raises(ValueError, match="target has no examples"): svc_mia(members, nonmembers, [])


class Lookup(nn.Module):
    "Predicts the class written in the first input column (of 3 classes)."
    def forward(self, x): return 10 * nn.functional.one_hot(x[:, 0].long(), 3).float()


def rows(pred, offset):
    "Inputs (n, 2): the class to predict, and a row id that keeps the splits disjoint."
    return torch.stack([torch.tensor(pred).float(), offset + torch.arange(len(pred)).float()], 1)


def test_test_acc_kept_known_answer():
    test = (rows([1, 0, 1, 2, 2, 2], 100), torch.tensor([0, 0, 1, 1, 2, 2]))  # predicted vs true: right at 1, 2, 4, 5
    cls = Problem(Lookup(), (rows([0, 0], 0), torch.tensor([0, 0])), (rows([1, 2], 50), torch.tensor([1, 2])), test=test)
    assert em.test_acc(Lookup(), cls) == pytest.approx(4 / 6)
    assert em.test_acc_kept(Lookup(), cls) == pytest.approx(3 / 4)   # class 0 dropped: true 1 1 2 2, predicted 1 2 2 2
    rnd = Problem(Lookup(), (rows([0, 1], 0), torch.tensor([0, 1])), (rows([0, 1, 2], 50), torch.tensor([0, 1, 2])), test=test)
    assert em.test_acc_kept(Lookup(), rnd) == em.test_acc(Lookup(), rnd)  # no class absent from retain: the same number


def test_gap_uses_the_papers_attack(setting):
    full, oracle, X, y, f, r, te = setting
    assert GAP_METRICS == ("forget_acc", "retain_acc", "test_acc", "mia_svc")
    assert {"mia", "mia_svc", "test_acc_kept"} <= set(DEFAULT_METRICS)
    p = Problem(full, (X[f], y[f]), (X[r], y[r]), test=(X[te], y[te]))
    m, o = evaluate(full, p), evaluate(oracle, p)
    assert avg_gap(m, o) == pytest.approx(np.mean([abs(m[k] - o[k]) for k in GAP_METRICS]))
    assert avg_gap(o, o) == 0.0
    with pytest.raises(ValueError, match="avg_gap needs mia_svc"): avg_gap({k: v for k, v in m.items() if k != "mia_svc"}, o)
