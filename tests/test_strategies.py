"""Registry-wide checks: every registered strategy is tested here with no extra work when it is added."""
import inspect

import pytest
import torch
import torch.nn.functional as F

from erasus.api import unlearn
from erasus.core import STRATEGIES, snapshot, state_equal
from erasus.data import Problem
from erasus.metrics import accuracy
from erasus.tasks import ClassificationTask, Task

NAMES = STRATEGIES.names()

# Strategies that by design do not meet the efficacy check (f) on the digits `class` scenario at their
# defaults: name -> reason. Each is an explicit, strict expectation, so a strategy that starts to pass is noticed.
EFFICACY_EXCEPTIONS: dict = {}


def entry(name):
    return STRATEGIES.get(name)[0]


def fast(name) -> dict:
    """Hyperparameter overrides for the quick checks (a)-(e): none, so that constraints between a strategy's
    hyperparameters (e.g. SCRUB's msteps <= epochs) hold; the small problem is what keeps these checks fast."""
    return {}


# Strategies whose effect depends on the forget set's share of the training data, so that the small 40/300
# problem can legitimately select nothing: name -> reason. They run the quick checks on the full class scenario.
NEEDS_FULL_PROBLEM = {
    "ssd": "SSD selects weights whose forget importance exceeds kappa times their retain importance, which needs enough forget "
           "examples for the importances to be stable; on the first 40 zeros no weight qualifies (and ssd says so)",
}


def pick(name, small, class_sc):
    "The problem the quick checks use for `name`."
    return class_sc.problem if name in NEEDS_FULL_PROBLEM else small


def needs_classification(name):
    if not entry(name).supports("classification"):
        pytest.skip(f"{name} does not support classification (kinds {entry(name).kinds}); see test_unsupported_kind_raises")


def as_model(out):
    return out[0] if isinstance(out, tuple) else out


# strategies that need a training trajectory (needs="trajectory", e.g. amnesiac) read the base model's, recorded and
# cached with it: this module's problems carry it (the other strategies ignore it), and raw-tensor calls pass it along
def traj(name, p) -> dict:
    return dict(trajectory=p.trajectory) if "trajectory" in str(entry(name).extra.get("needs", "")) else {}


@pytest.fixture(scope="module")
def class_sc():
    from erasus.bench import get_scenario
    return get_scenario("digits", "class", seed=0, trajectory=True)


@pytest.fixture(scope="module")
def small(class_sc, make_small):
    from dataclasses import replace
    p = make_small(class_sc)
    return replace(p, trajectory=class_sc.problem.trajectory.subset(torch.arange(p.n_forget)), check_overlap=False)


def test_registry_not_empty():
    assert len(NAMES) >= 4
    assert {"finetune", "gradient_ascent", "negative_gradient", "random_label"} <= set(NAMES)


# ---------------------------------------------------------------- metadata
@pytest.mark.parametrize("name", NAMES)
def test_metadata(name):
    e = entry(name)
    assert e.kind == "strategy" and e.name == name
    assert e.paper.strip(), f"{name}: no paper"
    assert e.summary.strip(), f"{name}: no summary"
    assert e.family.strip() and e.family == e.family.lower() and " " not in e.family, f"{name}: family {e.family!r}"
    assert all(isinstance(k, str) and k for k in e.kinds)
    # hyperparameters are keyword-only with defaults; the one positional argument is the problem
    sig = inspect.signature(e.fn)
    positional = [p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert len(positional) == 1, f"{name}: takes {[p.name for p in positional]} positionally"
    assert all(v is not inspect.Parameter.empty for v in e.defaults.values()), f"{name}: hyperparameter without default"
    for tag, over in e.presets.items():
        assert set(over) <= set(e.defaults), f"{name}.{tag}: preset sets unknown hyperparameters"


# ---------------------------------------------------------------- (a) not a no-op, (b) caller's model untouched
@pytest.mark.parametrize("name", NAMES)
def test_changes_model_and_leaves_callers_alone(name, small, class_sc):
    needs_classification(name)
    small = pick(name, small, class_sc)
    before = snapshot(small.model)
    res = unlearn(small, None, None, strategy=name, **fast(name))
    assert not state_equal(res.model, small.model), f"{name} returned the input model's weights (a no-op)"
    after = small.model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("name", NAMES)
def test_direct_call_leaves_callers_model_alone(name, small, class_sc):
    needs_classification(name)
    small = pick(name, small, class_sc)
    before = snapshot(small.model)
    new = as_model(entry(name).fn(small, **fast(name)))
    assert isinstance(new, torch.nn.Module) and new is not small.model
    after = small.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), f"{name} modified the caller's model"
    assert not state_equal(new, small.model)


@pytest.mark.parametrize("name", NAMES)
def test_raw_tensors_leave_callers_model_alone(name, small, class_sc):
    "The user path: a bare model and (X, y) tuples."
    needs_classification(name)
    small = pick(name, small, class_sc)
    model = small.model
    before = snapshot(model)
    res = unlearn(model, small.forget, small.retain, strategy=name, task=ClassificationTask(), **fast(name), **traj(name, small))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not state_equal(res.model, model)


# ---------------------------------------------------------------- (c) deterministic, new object
@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_new_object(name, small, class_sc):
    needs_classification(name)
    small = pick(name, small, class_sc)
    r1 = unlearn(small, None, None, strategy=name, seed=3, **fast(name))
    r2 = unlearn(small, None, None, strategy=name, seed=3, **fast(name))
    assert state_equal(r1.model, r2.model), f"{name}: same seed, different weights"
    assert r1.model is not small.model and r2.model is not small.model and r1.model is not r2.model
    mine = {p.data_ptr() for p in small.model.parameters()}
    assert not mine & {p.data_ptr() for p in r1.model.parameters()}, f"{name}: result shares storage with the input model"
    assert r1.hparams == r2.hparams and r1.strategy == name
    # the same problem given as raw tensors gives the same model
    r3 = unlearn(small.model, small.forget, small.retain, strategy=name, seed=3, test=small.test, **fast(name), **traj(name, small))
    assert state_equal(r1.model, r3.model)


# ---------------------------------------------------------------- (d) only the task kinds it supports
class OddKindTask(ClassificationTask):
    "A fully working classification task under a kind name no strategy lists."
    kind = "odd_kind"


class LossOnlyTask(Task):
    "A kind that only defines a loss: no correctness, no wrong targets, no class count."
    kind = "loss_only"

    def per_sample_loss(self, model, batch):
        return F.cross_entropy(model(batch[0]), batch[1], reduction="none")


class BareTask(Task):
    "A kind that defines nothing: every Task method raises TypeError."
    kind = "bare"


@pytest.mark.parametrize("task_cls", [OddKindTask, LossOnlyTask, BareTask])
@pytest.mark.parametrize("name", NAMES)
def test_unfamiliar_kind_raises_or_works(name, task_cls, small):
    "On a kind it does not list, a strategy raises TypeError; one that claims every kind either works or raises, never a no-op."
    e, task = entry(name), task_cls()
    before = snapshot(small.model)
    run = lambda: unlearn(small.model, small.forget, small.retain, strategy=name, task=task, **fast(name), **traj(name, small))
    if e.kinds and task.kind not in e.kinds:
        with pytest.raises(TypeError, match=task.kind):
            run()
    else:
        try:
            res = run()
        except TypeError as err:
            assert str(err), f"{name}: empty TypeError on a {task.kind} task"
        else:
            assert not state_equal(res.model, small.model), f"{name} silently did nothing on a {task.kind} task"
    assert all(torch.equal(before[k], v) for k, v in small.model.state_dict().items())


@pytest.mark.parametrize("name", NAMES)
def test_unsupported_kind_raises(name, small):
    "A strategy that does not list classification refuses the digits problem."
    if entry(name).supports("classification"):
        pytest.skip(f"{name} supports classification")
    with pytest.raises(TypeError, match="classification"):
        unlearn(small, None, None, strategy=name)


# ---------------------------------------------------------------- (e) unknown hyperparameters
@pytest.mark.parametrize("name", NAMES)
def test_unknown_hyperparameter(name, small):
    with pytest.raises(TypeError, match="nope_not_a_hparam"):
        unlearn(small, None, None, strategy=name, nope_not_a_hparam=1)
    with pytest.raises(TypeError, match="nope_not_a_hparam"):
        entry(name).fn(small, nope_not_a_hparam=1)


# ---------------------------------------------------------------- (f) efficacy at defaults on the class scenario
def _efficacy_params():
    out = []
    for n in NAMES:
        marks = [pytest.mark.xfail(strict=True, reason=EFFICACY_EXCEPTIONS[n])] if n in EFFICACY_EXCEPTIONS else []
        out.append(pytest.param(n, marks=marks))
    return out


@pytest.fixture(scope="module")
def class_refs(class_sc):
    p = class_sc.problem
    return dict(base_forget=accuracy(p.model, p.task, p.forget), base_retain=accuracy(p.model, p.task, p.retain),
                oracle_forget=accuracy(class_sc.oracle, p.task, p.forget))


@pytest.mark.parametrize("name", _efficacy_params())
def test_forgets_toward_oracle_keeps_retain(name, class_sc, class_refs):
    needs_classification(name)
    p = class_sc.problem
    assert class_refs["base_forget"] > 0.9 and class_refs["oracle_forget"] < 0.1  # the scenario is meaningful
    res = unlearn(p, None, None, strategy=name, seed=0)
    fa, ra = accuracy(res.model, p.task, p.forget), accuracy(res.model, p.task, p.retain)
    assert fa < class_refs["base_forget"], f"{name}: forget accuracy {fa:.3f} not below base {class_refs['base_forget']:.3f}"
    assert abs(fa - class_refs["oracle_forget"]) < abs(class_refs["base_forget"] - class_refs["oracle_forget"])
    assert ra >= class_refs["base_retain"] - 0.05, f"{name}: retain accuracy {ra:.3f} vs base {class_refs['base_retain']:.3f}"


def test_every_registry_module_imports():
    "A module that fails to import is skipped with a warning at run time; here it is an error."
    from erasus.core import BENCHMARKS, METRICS, SELECTORS, STRATEGIES
    for reg in (STRATEGIES, SELECTORS, METRICS, BENCHMARKS):
        reg.names()
        assert reg.failed == {}, f"{reg.kind} modules failed to import: {reg.failed}"


def test_selector_hparams_reach_the_selector(tmp_path):
    from erasus.bench import run_bench
    res = run_bench("digits", ["class"], ["gradient_ascent"], ["random"], [0.2], seeds=[0],
                    hparams={"gradient_ascent": {"epochs": 1}, "random": {"nope": 1}}, progress=False)
    row = next(r for r in res["rows"] if r["strategy"] == "gradient_ascent")
    assert row["status"] == "error" and "does not take nope" in row["error"]


def _bn_model(seed=0):
    "A digits-shaped MLP with batch norm, trained briefly and left in train mode, as a training loop leaves it."
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.BatchNorm1d(64), torch.nn.ReLU(), torch.nn.Linear(64, 10))


@pytest.mark.parametrize("name", NAMES)
def test_batchnorm_model_in_train_mode_untouched(name, small):
    "Building the problem and unlearning never moves the caller's batch-norm statistics or its train/eval mode."
    needs_classification(name)
    model = _bn_model()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    data = tuple(torch.cat([a, b]) for a, b in zip(small.forget, small.retain))
    for _ in range(30):
        opt.zero_grad(); F.cross_entropy(model(data[0]), data[1]).backward(); opt.step()
    model.train()
    before = snapshot(model)
    try:
        unlearn(model, small.forget, small.retain, strategy=name, test=small.test)
    except (TypeError, ValueError) as err:  # a strategy may refuse this architecture, clearly
        assert str(err)
    assert model.training, f"{name}: the caller's model was switched to eval mode"
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not changed, f"{name} changed the caller's {changed}"


# ---------------------------------------------------------------- (g) budgets, targets and reports (issue 7)
def _uses_steps(name):
    return "steps" in entry(name).defaults


@pytest.mark.parametrize("name", NAMES)
def test_reports_target_and_compute(name, small, class_sc):
    "Every result says where a retrained model would be, whether it got there, and (if it optimises) what it cost."
    needs_classification(name)
    p = pick(name, small, class_sc)
    res = unlearn(p, None, None, strategy=name, seed=0)
    assert res.target == 0.0 and res.target_metric == "forget_acc", (name, res.target, res.target_basis)
    assert "absent from the retain set" in res.target_basis
    assert res.reached in (True, False) and 0 <= res.forget_acc <= 1
    assert res.reached == (res.forget_acc <= 0.02)
    if _uses_steps(name):
        assert res.budget is not None and 1 <= res.steps <= res.budget, (name, res.steps, res.budget)
        assert res.examples_seen >= res.steps


@pytest.mark.parametrize("name", [n for n in NAMES if _uses_steps(n)])
def test_coreset_keeps_the_whole_sets_budget(name, class_sc):
    "Under a selector the budget is the whole forget set's (equal steps) unless equal epochs are asked for."
    needs_classification(name)
    p = class_sc.problem
    hp = dict(target_acc=None) if "target_acc" in entry(name).defaults else {}
    full = unlearn(p, None, None, strategy=name, seed=0, **hp)
    core = unlearn(p, None, None, strategy=name, seed=0, fraction=0.2, **hp)
    epochs = unlearn(p, None, None, strategy=name, seed=0, fraction=0.2, budget="equal-epochs", **hp)
    assert core.budget == full.budget, f"{name}: a 20% coreset got {core.budget} steps, the whole set {full.budget}"
    assert epochs.budget <= full.budget and epochs.budget_mode == "equal-epochs"


@pytest.mark.parametrize("name", [n for n in NAMES if "lr" in entry(n).defaults])
def test_diverging_run_is_an_error_not_a_result(name, small, class_sc):
    "With an absurd learning rate a strategy raises; it never returns a 'successful' model with non-finite outputs."
    needs_classification(name)
    p = pick(name, small, class_sc)
    with pytest.raises((FloatingPointError, ValueError, RuntimeError)):
        unlearn(p, None, None, strategy=name, lr=1e38)


def test_bad_budget_mode_and_target_refused_before_training(small):
    with pytest.raises(ValueError, match="budget must be one of equal-steps, equal-epochs"):
        unlearn(small, None, None, strategy="gradient_ascent", budget="equal-time")
    with pytest.raises(ValueError, match="target_acc must be"):
        unlearn(small, None, None, strategy="gradient_ascent", target_acc=1.5)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        unlearn(small, None, None, strategy="gradient_ascent", steps=0)
