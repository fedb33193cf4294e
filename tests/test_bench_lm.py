"""The benchmark runner on causal LMs (the `facts.tiny` preset): per-kind defaults, the oracle out of a strategy's reach,
and `erasus bench facts` end to end (rows, resume, table width)."""
import contextlib
import io
import json

import pytest
import torch
from torch import nn

torch.set_num_threads(1)

from erasus.bench import (get_scenario, kind_defaults, oracle_context, oracle_value, reference_rows,  # noqa: E402
                          run_row)
from erasus.cli import WIDTH, main  # noqa: E402
from erasus.core import STRATEGIES, register_strategy  # noqa: E402

pytest.importorskip("transformers")
MUSE_COLS = ("verbmem_forget", "knowmem_forget", "knowmem_retain", "privleak", "forget_quality", "model_utility")


@pytest.fixture(scope="module")
def sc():
    "The small facts preset, forget10, seed 0 (cached after the first build)."
    return get_scenario("facts.tiny", "forget10", seed=0)


def test_kind_defaults_follow_the_task(sc):
    from erasus.lm_metrics import LM_DEFAULT_METRICS, LM_GAP_METRICS, lm_avg_gap
    d = kind_defaults(sc.kind)
    assert (sc.kind, d.metrics, d.gap_keys, d.gap) == ("causal_lm", tuple(LM_DEFAULT_METRICS), tuple(LM_GAP_METRICS), lm_avg_gap)


def test_strategy_defaults_of_the_task_kind(sc):
    "npo and scrub take their causal-LM defaults on facts (in the row and its hash), their own on digits; the caller still decides."
    from erasus.bench import benchmark_kind, resolved_hparams
    assert (benchmark_kind("facts.tiny"), benchmark_kind("digits")) == ("causal_lm", "classification")
    assert resolved_hparams(STRATEGIES, "npo", {}, "causal_lm")["retain_weight"] == 1.0
    assert resolved_hparams(STRATEGIES, "npo", {}, "classification")["retain_weight"] == 0.0
    assert resolved_hparams(STRATEGIES, "npo", dict(retain_weight=0.0), "causal_lm")["retain_weight"] == 0.0
    assert resolved_hparams(STRATEGIES, "scrub", {}, "causal_lm")["optimizer"] == "adam"
    row = run_row(sc, "npo", hparams=dict(steps=2, target_acc=None))
    assert row["status"] == "ok" and row["hparams"]["retain_weight"] == 1.0


def test_npo_and_scrub_forget_on_a_causal_lm_at_their_defaults(sc):
    "At their causal-LM defaults npo (NPO-RT) and scrub (Adam) forget the facts and keep the rest; before, scrub changed nothing."
    for name in ("npo", "scrub"):
        row = run_row(sc, name)
        assert row["status"] == "ok", row.get("error")
        assert row["knowmem_forget"] <= 0.3 and row["knowmem_retain"] >= 0.9, (name, row["knowmem_forget"], row["knowmem_retain"])


def test_reference_rows_oracle_is_its_own_target(sc):
    "The oracle's PrivLeak is 0 and its forget quality 1; the base model is far from both; LM columns, no accuracies."
    base, oracle = reference_rows(sc)
    assert (oracle["strategy"], oracle["privleak"], oracle["forget_quality"], oracle["avg_gap"]) == ("retrain", 0.0, 1.0, 0.0)
    assert base["privleak"] < -50 and base["forget_quality"] < 0.05 and base["knowmem_forget"] > 0.8
    assert set(MUSE_COLS) <= set(base) and "forget_acc" not in base
    # the oracle's own numbers are in the scenario's memo, computed once: a second call reuses them
    memo = {k: v for k, v in sc.memo.items() if k[0] == "oracle-value"}
    assert set(memo) == {("oracle-value", "privleak"), ("oracle-value", "forget_quality")}
    reference_rows(sc)
    assert all(sc.memo[k] is v for k, v in memo.items())


def _reachable(obj, target, depth: int = 4, seen=None) -> bool:
    "Whether `target` (or a module sharing its parameters) is reachable from `obj` through attributes, dicts and sequences."
    seen = set() if seen is None else seen
    if obj is target: return True
    if id(obj) in seen or depth < 0 or isinstance(obj, (str, bytes, int, float, torch.Tensor)): return False
    seen.add(id(obj))
    if isinstance(obj, nn.Module):
        mine = {p.data_ptr() for p in target.parameters()}
        return any(p.data_ptr() in mine for p in obj.parameters())
    if isinstance(obj, dict): items = list(obj.values())
    elif isinstance(obj, (list, tuple, set)): items = list(obj)
    else: items = list(getattr(obj, "__dict__", {}).values())
    return any(_reachable(v, target, depth - 1, seen) for v in items)


def test_a_strategy_cannot_reach_the_oracle(sc):
    "A strategy gets a problem with no oracle on it, and `oracle_value` refuses while it runs; the row still measures."
    seen = {}

    def peek_oracle(problem, *, steps: int = 0):
        "Test-only: look for the oracle."
        seen["reachable"] = _reachable(problem, sc.oracle)
        try: oracle_value(problem, "peek", lambda o: o); seen["oracle_value"] = "answered"
        except ValueError: seen["oracle_value"] = "refused"
        return problem.clone_model(), dict(steps=0)

    register_strategy(kinds=["causal_lm"])(peek_oracle)
    try: row = run_row(sc, "peek_oracle")
    finally: STRATEGIES.entries.pop("peek_oracle", None)
    assert seen == dict(reachable=False, oracle_value="refused"), seen
    assert row["status"] == "ok", row["error"]
    assert row["privleak"] < -50 and row["forget_quality"] < 0.05   # an unchanged model measures as the base model
    assert not _reachable(sc.problem, sc.oracle)
    with oracle_context(sc.oracle): assert oracle_value(sc.problem, "x", lambda o: o) is sc.oracle


def _bench(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_erasus_bench_facts_end_to_end(tmp_path):
    "`erasus bench facts.tiny`: base, retrain and strategy rows with the MUSE/TOFU columns; a rerun resumes; 120 columns."
    out = tmp_path / "x.json"
    argv = ["bench", "facts.tiny", "--scenario", "forget10", "--strategies", "gradient_ascent,npo", "--seeds", "1",
            "--out", str(out), "--no-progress"]
    code, table, err = _bench(*argv)
    assert code == 0, err
    res = json.loads(out.read_text())
    assert not (tmp_path / "x.json.journal").exists()
    rows = {r["strategy"]: r for r in res["rows"]}
    assert set(rows) == {"base", "retrain", "gradient_ascent", "npo"}
    for r in rows.values():
        assert r["status"] == "ok" and set(MUSE_COLS) | {"seconds", "avg_gap"} <= set(r), r
    assert all(rows[s]["steps"] > 0 for s in ("gradient_ascent", "npo"))
    assert max(map(len, table.splitlines())) <= WIDTH, table
    head = table.splitlines()[0].split()
    assert {"avg_gap", "verbmem", "km_forget", "km_retain", "privleak", "fq", "utility"} <= set(head), head
    assert "KnowMem" in err
    # the same command again trains nothing: every row is reused
    code, table2, err = _bench(*argv)
    assert code == 0, err
    again = json.loads(out.read_text())
    assert again["provenance"]["runs"][-1]["reused"] == 4 and again["provenance"]["runs"][-1]["rows"] == 0
    assert table2 == table
