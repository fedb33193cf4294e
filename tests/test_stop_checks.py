"""Stop checks that cost a small fraction of the training (issue 9): on the digits benchmark's scenarios, the adaptive
schedule decides as the exact rule (the whole forget set after every step) does, for fewer evaluated rows.

Costs are compared in rows, which machine load does not move; `python tools/stop_checks.py` prints rows and seconds."""
import warnings

import pytest
import torch

from erasus import budgets
from erasus.api import unlearn
from erasus.bench import get_scenario
from erasus.budgets import exact_stops

STRATEGIES = ["gradient_ascent", "negative_gradient", "npo", "scrub", "random_label", "saliency_unlearning",
              "knowledge_distillation"]
STEP_TOL = 4  # the adaptive rule may stop a few steps after the exact one, never before


@pytest.fixture(scope="module")
def scenarios():
    torch.set_num_threads(1)
    return {s: get_scenario("digits", s, seed=0) for s in ("class", "random")}


def run(problem, strategy, exact):
    "`unlearn` at the strategy's defaults, with the exact stop rule or the adaptive one."
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not exact: return unlearn(problem, None, None, strategy=strategy)
        with exact_stops(): return unlearn(problem, None, None, strategy=strategy)


@pytest.mark.parametrize("scenario", ["class", "random"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_same_decision_for_fewer_rows(scenarios, scenario, strategy):
    p = scenarios[scenario].problem
    ex, ad = run(p, strategy, True), run(p, strategy, False)
    assert (ex.log["stop_every"], ad.log["stop_every"]) == (1, "adaptive")
    # 1. the same decision: stopped or not, target reached or not, at about the same step and forget accuracy
    assert (ad.log["stopped"], ad.reached) == (ex.log["stopped"], ex.reached), (ex.log["stopped"], ex.reached)
    assert ex.steps <= ad.steps <= ex.steps + STEP_TOL, (ex.steps, ad.steps)
    assert abs(ad.forget_acc - ex.forget_acc) <= 0.01, (ex.forget_acc, ad.forget_acc)
    # 2. for fewer rows; a forgotten class is watched on a few rows between whole-set checks
    assert ad.log["stop_rows"] < ex.log["stop_rows"], (ex.log["stop_rows"], ad.log["stop_rows"])
    if scenario == "class": assert ad.log["stop_rows"] <= 0.25 * ex.log["stop_rows"], (ex.log["stop_rows"], ad.log["stop_rows"])
    assert ad.log["stop_full_checks"] <= ad.log["stop_checks"] < ex.log["stop_checks"] == ex.log["stop_full_checks"]


def test_exact_stops_is_scoped(scenarios):
    p = scenarios["class"].problem
    with pytest.raises(RuntimeError):
        with exact_stops():
            assert budgets.stop_rule(p).every == 1
            raise RuntimeError("leave the block")
    assert budgets.stop_rule(p).every is None                       # restored, also after an error
    with exact_stops(): assert budgets.stop_rule(p, every=5).every == 5   # a fixed period is kept
