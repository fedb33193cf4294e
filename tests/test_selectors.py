"""Registry-wide checks: every registered selector is tested here with no extra work when it is added."""
import math
from dataclasses import replace

import pytest
import torch

from erasus.api import select, unlearn
from erasus.core import SELECTORS, Selection, snapshot
from erasus.data import Problem

NAMES = SELECTORS.names()
# selectors that can only return the whole forget set (k == n is their only valid budget)
WHOLE_SET_ONLY = {"full"}


def entry(name):
    return SELECTORS.get(name)[0]


# selectors that need a training trajectory (needs="trajectory") read the base model's, recorded and cached with it:
# the small problems here carry the trajectory of their forget rows (the other selectors ignore it)
def _with_trajectory(make_small, scenario):
    from erasus.bench import get_scenario
    sc = get_scenario("digits", scenario, seed=0, trajectory=True)
    p = make_small(sc)
    return replace(p, trajectory=sc.problem.trajectory.subset(torch.arange(p.n_forget)), check_overlap=False)


@pytest.fixture(scope="module")
def small(make_small):
    return _with_trajectory(make_small, "class")


@pytest.fixture(scope="module")
def small_random(make_small):
    return _with_trajectory(make_small, "random")


def valid_ks(name, n):
    return [n] if name in WHOLE_SET_ONLY else sorted({1, n // 3, n - 1, n})


def check(sel, name, k, n):
    assert isinstance(sel, Selection)
    assert sel.k == len(sel.indices) == k
    assert sel.indices.dtype == torch.long and sel.indices.dim() == 1
    assert len(torch.unique(sel.indices)) == k, "indices are not unique"
    assert int(sel.indices.min()) >= 0 and int(sel.indices.max()) < n, "indices out of range"
    assert sel.n == n and sel.selector == name
    if sel.weights is not None:
        assert sel.weights.shape == (k,)
        assert torch.isfinite(sel.weights).all() and (sel.weights >= 0).all() and sel.weights.sum() > 0


def test_registry_not_empty():
    assert {"full", "random"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_metadata(name):
    e = entry(name)
    assert e.kind == "selector" and e.name == name
    assert e.summary.strip() and e.family.strip()
    assert e.extra.get("needs"), f"{name}: does not say what it needs"


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", NAMES)
def test_budget_unique_in_range_deterministic(name, seed, small_random):
    p = replace(small_random, seed=seed, check_overlap=False)
    n = p.n_forget
    for k in valid_ks(name, n):
        a, b = select(p, name, k=k), select(p, name, k=k)
        check(a, name, k, n)
        assert torch.equal(a.indices, b.indices), f"{name}: k={k}, seed={seed} not deterministic"
        assert (a.weights is None) == (b.weights is None)
        if a.weights is not None: assert torch.equal(a.weights, b.weights)


@pytest.mark.parametrize("name", NAMES)
def test_k_equal_n(name, small):
    sel = select(small, name, k=small.n_forget)
    check(sel, name, small.n_forget, small.n_forget)
    assert sorted(sel.indices.tolist()) == list(range(small.n_forget))


@pytest.mark.parametrize("name", NAMES)
def test_fraction(name, small):
    n = small.n_forget
    if name in WHOLE_SET_ONLY:
        check(select(small, name, fraction=1.0), name, n, n)
        with pytest.raises(ValueError, match=name):
            select(small, name, fraction=0.5)
    else:
        check(select(small, name, fraction=0.5), name, math.ceil(0.5 * n), n)


@pytest.mark.parametrize("name", NAMES)
def test_k_zero_raises(name, small):
    with pytest.raises(ValueError, match=r"k must be at least 1"):
        select(small, name, k=0)
    with pytest.raises(ValueError, match=r"k must be at least 1"):
        select(small, name, k=-3)


@pytest.mark.parametrize("name", NAMES)
def test_k_larger_than_pool_raises(name, small):
    n = small.n_forget
    with pytest.raises(ValueError, match=rf"k={n + 1} is larger than the pool of {n}"):
        select(small, name, k=n + 1)


@pytest.mark.parametrize("name", NAMES)
def test_non_int_k_raises(name, small):
    with pytest.raises(TypeError, match="k must be an int"):
        select(small, name, k=2.0)


@pytest.mark.parametrize("name", sorted(WHOLE_SET_ONLY & set(NAMES)))
def test_whole_set_only_refuses_smaller_k(name, small):
    with pytest.raises(ValueError, match=rf"{name}.*k={small.n_forget - 1}"):
        select(small, name, k=small.n_forget - 1)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_selector_kwarg(name, small):
    with pytest.raises(TypeError, match="nope_not_a_kwarg"):
        select(small, name, k=small.n_forget, nope_not_a_kwarg=1)


@pytest.mark.parametrize("name", NAMES)
def test_through_unlearn(name, small):
    "`unlearn(selector=..., k=...)` uses exactly the selector's choice and leaves the caller's model alone."
    k = valid_ks(name, small.n_forget)[1 if len(valid_ks(name, small.n_forget)) > 1 else 0]
    before = snapshot(small.model)
    res = unlearn(small, None, None, strategy="gradient_ascent", selector=name, k=k, epochs=1)
    assert res.selection.k == k and res.selection.selector == name
    assert torch.equal(res.selection.indices, select(small, name, k=k).indices)
    assert all(torch.equal(before[n], v) for n, v in small.model.state_dict().items())


class _NaNHidden(torch.nn.Module):
    "An MLP whose hidden activations, and so its features and logits, are NaN."
    def __init__(self):
        super().__init__(); self.a, self.b = torch.nn.Linear(32, 16), torch.nn.Linear(16, 10)
    def forward(self, x): return self.b(self.a(x) * float("nan"))


@pytest.mark.parametrize("name", NAMES)
def test_broken_model_raises(name, small):
    "A selector that reads the model refuses NaN features or scores instead of selecting from garbage."
    if entry(name).extra.get("needs") == "nothing":
        pytest.skip(f"{name} does not read the model")
    p = replace(small, model=_NaNHidden(), check_overlap=False)
    with pytest.raises((FloatingPointError, ValueError)):
        select(p, name, k=3)


SIZE_LIMITED = [n for n in NAMES if entry(n).extra.get("max_n") is not None]


@pytest.mark.parametrize("name", SIZE_LIMITED)
def test_refuses_above_max_n(name):
    "A selector that declares `max_n` says what grows and what scales instead, and refuses a larger forget set at once."
    e = entry(name)
    max_n, instead = e.extra["max_n"], e.extra.get("instead", "")
    assert e.extra.get("cost") and instead, f"{name}: max_n without cost= and instead="
    alt = instead.split()[0]                                   # the first alternative named is a selector that scales further
    assert alt in NAMES and (entry(alt).extra.get("max_n") or math.inf) > max_n, f"{name}: {alt!r} does not scale further"
    n = max_n + 1
    p = Problem(torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(2, 3)), (torch.randn(n, 2), torch.zeros(n, dtype=torch.long)),
                (torch.randn(4, 2) + 9, torch.zeros(4, dtype=torch.long)), seed=0)
    with pytest.raises(ValueError, match=rf"{name} needs .*at most {max_n:,} forget examples, got {n:,}: use {alt}"):
        select(p, name, k=5)
