"""Training trajectories: recording never changes the trained weights, the benchmark caches them safely, and problems,
selections and `unlearn` carry them consistently."""
import warnings
from dataclasses import replace

import pytest
import torch

from erasus.api import select, unlearn
from erasus.bench import get_scenario
from erasus.core import Selection, state_equal, warmup
from erasus.data import Problem
from erasus.models import CacheWarning, MLP, benchmark_model, train
from erasus.trajectory import Trajectory, cached_trajectory, need_trajectory, train_recorded


@pytest.fixture(scope="module")
def joint(class_sc):
    p = class_sc.problem
    return tuple(torch.cat([a, b]) for a, b in zip(p.forget, p.retain)), p.task, p.n_forget


def test_recording_is_bit_identical_and_draws_no_randomness(joint):
    data, task, nf = joint
    warmup()  # its one-off initialisation draws from the global RNG, once per process
    plain = benchmark_model(32, 10, 0); train(plain, task, data, epochs=3, seed=5)
    after_plain = torch.get_rng_state()
    rec = benchmark_model(32, 10, 0); tr = train_recorded(rec, task, data, rows=torch.arange(nf), epochs=3, seed=5)
    assert state_equal(plain, rec), "recording changed the trained weights"
    assert torch.equal(torch.get_rng_state(), after_plain), "recording consumed the global random state"
    assert tr.loss.shape == tr.correct.shape == (3, nf) and tr.n_epochs == 3
    assert state_equal(tr.model_at(benchmark_model(32, 10, 0), -1), rec)


def test_benchmark_trajectory_matches_the_cached_model(class_sc):
    sc = get_scenario("digits", "class", seed=0, trajectory=True)
    tr = sc.problem.trajectory
    assert class_sc.problem.trajectory is None or class_sc.problem.trajectory.n == tr.n
    assert state_equal(sc.problem.model, get_scenario("digits", "class", seed=0).problem.model)
    assert (tr.n, tr.n_epochs, tr.epochs, tr.lrs) == (sc.problem.n_forget, 30, [6, 12, 18, 24, 30], [1e-3] * 5)
    assert state_equal(tr.model_at(sc.problem.model, -1), sc.problem.model)   # last checkpoint = the base model
    assert tr.correct[-1].float().mean() > 0.95 and torch.isfinite(tr.loss).all()
    assert {"record_overhead", "plain_seconds", "touched_steps"} <= set(tr.info)


def test_subtracting_every_update_returns_to_the_initialisation():
    "On `original` (200 of 1000 examples) every step held a forget example: theta_T - sum of updates = theta_0."
    sc = get_scenario("digits", "original", seed=0, trajectory=True)
    tr = sc.problem.trajectory
    assert tr.info["touched_steps"] == tr.info["steps"]
    init = dict(benchmark_model(32, 10, 0).named_parameters())
    for n, p in sc.problem.model.named_parameters():
        assert torch.allclose(p - tr.update_of()[n], init[n], atol=1e-5), n


def test_selection_subsets_the_trajectory(small):
    sc = get_scenario("digits", "random", seed=0, trajectory=True)
    p = sc.problem
    sel = select(p, "random", k=10)
    sub = p.select(sel)
    assert torch.equal(sub.trajectory.rows, sel.indices)
    assert torch.equal(sub.trajectory.loss, p.trajectory.loss[:, sel.indices])
    assert torch.equal(sub.trajectory.correct, p.trajectory.correct[:, sel.indices])
    # a coreset of a coreset still maps back to the recorded rows
    sub2 = sub.select(Selection(torch.tensor([1, 3]), n=10))
    assert torch.equal(sub2.trajectory.rows, sel.indices[[1, 3]])


def test_problem_and_unlearn_carry_and_check_the_trajectory(small):
    tr = Trajectory([], [], [], loss=torch.zeros(2, small.n_forget), correct=torch.zeros(2, small.n_forget, dtype=torch.bool))
    with pytest.raises(ValueError, match="trajectory has 3 rows but forget has"):
        Problem(small.model, small.forget, small.retain, trajectory=tr.subset(torch.arange(3)))
    with pytest.raises(TypeError, match="erasus.trajectory.Trajectory"):
        Problem(small.model, small.forget, small.retain, trajectory="not one")
    res = unlearn(small.model, small.forget, small.retain, steps=1, target_acc=None, trajectory=tr)
    assert res.problem.trajectory is tr


def test_need_trajectory_says_how_to_get_one(small):
    bare = replace(small, trajectory=None, check_overlap=False)
    with pytest.raises(ValueError, match=r"get_scenario\('digits', scenario, seed, trajectory=True\).*train_recorded"):
        need_trajectory(bare, "some_selector")
    sc = get_scenario("digits", "class", seed=0, trajectory=True)
    other = replace(sc.problem, model=MLP(32, 16, 10), check_overlap=False)
    with pytest.raises(ValueError, match="another architecture"):
        need_trajectory(other, "some_selector")


def test_cache_prints_cost_and_detects_corruption(tmp_path, capsys):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(96, 4, generator=g); y = (X[:, 0] > 0).long()
    from erasus.tasks import ClassificationTask
    def make(): torch.manual_seed(0); return MLP(4, 8, 2)
    kw = dict(rows=torch.arange(10), epochs=3, lr=1e-2, batch_size=32, seed=0, cache=tmp_path)
    a = cached_trajectory(dict(name="t"), make, ClassificationTask(2), (X, y), **kw)
    assert "recording added" in capsys.readouterr().out
    b = cached_trajectory(dict(name="t"), make, ClassificationTask(2), (X, y), **kw)
    assert b.info["cached"] and capsys.readouterr().out == ""
    assert torch.equal(a.updates, b.updates) and torch.equal(a.loss, b.loss)
    f = next(tmp_path.glob("*.safetensors"))
    f.write_bytes(f.read_bytes()[:-10])                                     # a truncated file
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        c = cached_trajectory(dict(name="t"), make, ClassificationTask(2), (X, y), **kw)
    assert any(issubclass(w.category, CacheWarning) and "checksum mismatch" in str(w.message) for w in ws)
    assert not c.info["cached"] and torch.equal(c.loss, a.loss)


def test_amnesiac_on_a_users_own_recording():
    "The user path: record while training, then `unlearn(..., trajectory=tr)`."
    g = torch.Generator().manual_seed(1)
    X = torch.randn(200, 4, generator=g); y = (X[:, 0] + X[:, 1] > 0).long()
    from erasus.tasks import ClassificationTask
    torch.manual_seed(0); net = MLP(4, 16, 2)
    tr = train_recorded(net, ClassificationTask(2), (X, y), rows=torch.arange(20), epochs=5, lr=1e-2, seed=0)
    res = unlearn(net, (X[:20], y[:20]), (X[20:], y[20:]), strategy="amnesiac", trajectory=tr, target_acc=None, steps=40)
    assert res.steps == 40 and not state_equal(res.model, net)
    with pytest.raises(ValueError, match="trajectory=True"):
        unlearn(net, (X[:20], y[:20]), (X[20:], y[20:]), strategy="amnesiac")


def test_float64_recording_and_amnesiac_keep_the_dtype():
    g = torch.Generator().manual_seed(2)
    X = torch.randn(120, 4, generator=g, dtype=torch.float64); y = (X[:, 0] > 0).long()
    from erasus.tasks import ClassificationTask
    torch.manual_seed(0); net = MLP(4, 8, 2).double()
    tr = train_recorded(net, ClassificationTask(2), (X, y), rows=torch.arange(12), epochs=3, lr=1e-2, batch_size=32, seed=0)
    res = unlearn(net, (X[:12], y[:12]), (X[12:], y[12:]), strategy="amnesiac", trajectory=tr, target_acc=None, steps=2)
    assert all(p.dtype == torch.float64 for p in res.model.parameters())
    assert all(v.dtype == torch.float64 for v in tr.checkpoints[-1].values())
