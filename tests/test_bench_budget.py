"""The runner's step budgets, tuned rows and resume keys: every row says how much work it was and what decided it."""
import contextlib
import io
import json

import pytest

import erasus
from erasus import bench
from erasus.bench import (bench_options, load_results, resolved_hparams, row_hash, row_key, run_bench, run_row,
                          save_results, summarize)
from erasus.cli import main
from erasus.core import SELECTORS, STRATEGIES

GA_LR = STRATEGIES.get("gradient_ascent")[0].defaults["lr"]
SMALL = dict(benchmark="digits", scenarios=["class"], strategies=["gradient_ascent"], seeds=[0], progress=False)
ROW_FIELDS = {"budget_mode", "steps", "examples_seen", "target", "target_basis", "reached", "variant", "options", "config_hash", "run"}


def cli(*argv):
    "Run `erasus ...` in this process: (exit code, stdout, stderr)."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def by(rows, **where):
    "The rows whose fields equal `where`."
    return [r for r in rows if all(r.get(k) == v for k, v in where.items())]


@pytest.fixture
def no_training(monkeypatch):
    "Fail the test if the runner gets as far as building a scenario (which trains, or loads, models)."
    def refuse(*a, **k): raise AssertionError("the runner built a scenario before refusing the grid")
    monkeypatch.setattr(bench, "get_scenario", refuse)


# ---------------------------------------------------------------- budgets
@pytest.mark.parametrize("budget", ["equal-steps", "equal-epochs"])
def test_rows_record_budget_and_work(budget, tmp_path):
    res = run_bench(**{**SMALL, "selectors": ["full", "random"], "fractions": [1.0, 0.2]}, budget=budget, out=tmp_path / "r.json")
    rows = [r for r in res["rows"] if r["strategy"] == "gradient_ascent"]
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows), rows
    for r in rows:
        assert ROW_FIELDS <= set(r), ROW_FIELDS - set(r)
        assert r["budget_mode"] == budget and r["variant"] == "default"
        assert isinstance(r["steps"], int) and r["steps"] >= 1 and r["examples_seen"] >= r["steps"]
        assert r["target"] == 0.0 and r["target_basis"] and isinstance(r["reached"], bool)
        assert r["options"] == bench_options("digits", {})
    full, core = by(rows, selector="full")[0], by(rows, selector="random")[0]
    if budget == "equal-steps": assert core["step_budget"] == full["step_budget"]  # the full set's budget on a coreset
    else: assert core["step_budget"] < full["step_budget"]  # epochs over the coreset only
    assert load_results(tmp_path / "r.json")["rows"] == res["rows"]


def test_budget_mode_decides_the_row(tmp_path):
    "A row made under another budget mode is stale: rerun, and replaced (one row per identity)."
    out = tmp_path / "r.json"
    grid = {**SMALL, "selectors": ["random"], "fractions": [0.2]}
    run_bench(**grid, out=out)
    err = io.StringIO()
    with contextlib.redirect_stderr(err): res = run_bench(**grid, out=out, budget="equal-epochs")
    assert "1 of the rows" in err.getvalue()
    assert [r["budget_mode"] for r in by(res["rows"], strategy="gradient_ascent")] == ["equal-epochs"]


def test_unknown_budget_mode_before_training(no_training, class_sc):
    with pytest.raises(ValueError, match="unknown budget mode 'equal-time'; use equal-steps or equal-epochs"):
        run_bench(**SMALL, budget="equal-time")
    with pytest.raises(ValueError, match="unknown budget mode"):
        run_row(class_sc, "gradient_ascent", budget="steps")
    code, _, err = cli("bench", "digits", "--strategies", "gradient_ascent", "--seeds", "1", "--budget", "equal-time")
    assert code == 2 and "invalid choice: 'equal-time'" in err


def test_row_falls_back_on_the_log(class_sc, monkeypatch):
    "A result without the new fields (a strategy that only logs them) still gives steps and examples seen."
    import erasus.api
    real = erasus.api.unlearn
    def old_style(*a, **k):
        res = real(*a, **k)
        res.log.update(steps=res.steps, examples_seen=res.examples_seen)
        res.steps = res.examples_seen = None
        return res
    monkeypatch.setattr(erasus.api, "unlearn", old_style)
    row = run_row(class_sc, "gradient_ascent")
    assert row["status"] == "ok" and row["steps"] >= 1 and row["examples_seen"] >= row["steps"]


# ---------------------------------------------------------------- tuned rows
def test_tuned_rows_next_to_default(tmp_path):
    out = tmp_path / "r.json"
    tuned = {"class": {"gradient_ascent": {"lr": 2 * GA_LR}, "not_in_grid": {"lr": 1.0}}, "random": {"gradient_ascent": {"lr": 1.0}}}
    res = run_bench(**{**SMALL, "strategies": ["gradient_ascent", "finetune"], "seeds": [0, 1]}, tuned=tuned, out=out)
    ga = by(res["rows"], strategy="gradient_ascent")
    assert sorted((r["seed"], r["variant"]) for r in ga) == [(0, "default"), (0, "tuned"), (1, "default"), (1, "tuned")]
    assert {r["hparams"]["lr"] for r in by(ga, variant="tuned")} == {2 * GA_LR}
    assert {r["hparams"]["lr"] for r in by(ga, variant="default")} == {GA_LR}
    assert {r["variant"] for r in by(res["rows"], strategy="finetune")} == {"default"}  # nothing tuned for it
    assert len({row_key(r) for r in res["rows"]}) == len(res["rows"])  # the variant is part of the identity
    s = summarize(res["rows"])
    assert sorted(s[s.strategy == "gradient_ascent"].variant) == ["default", "tuned"]
    # a rerun reuses both; a tuned value that changed reruns only the tuned rows
    again = run_bench(**{**SMALL, "strategies": ["gradient_ascent", "finetune"], "seeds": [0, 1]}, tuned=tuned, out=out)
    assert again["rows"] == res["rows"]
    err = io.StringIO()
    tuned["class"]["gradient_ascent"]["lr"] = 3 * GA_LR
    with contextlib.redirect_stderr(err):
        third = run_bench(**{**SMALL, "strategies": ["gradient_ascent", "finetune"], "seeds": [0, 1]}, tuned=tuned, out=out)
    assert "2 of the rows" in err.getvalue()
    assert by(third["rows"], variant="default") == by(res["rows"], variant="default")


def test_tuned_values_override_hp_for_the_tuned_row():
    res = run_bench(**SMALL, hparams={"gradient_ascent": {"lr": GA_LR / 2, "epochs": 3}},
                    tuned={"class": {"gradient_ascent": {"lr": 2 * GA_LR}}})
    d, t = (by(res["rows"], strategy="gradient_ascent", variant=v)[0]["hparams"] for v in ("default", "tuned"))
    assert (d["lr"], d["epochs"], t["lr"], t["epochs"]) == (GA_LR / 2, 3, 2 * GA_LR, 3)


def tuned_file(path, hp):
    "A file in the format `erasus tune` writes."
    path.write_text(json.dumps(dict(provenance=dict(trials=7, seeds=[100, 101]),
                                    tuned={"class": {"gradient_ascent": dict(hparams=hp, avg_gap=0.01, trials=7)}})))
    return path


def test_tuned_file_from_the_cli(tmp_path):
    pytest.importorskip("erasus.tune")
    f = tuned_file(tmp_path / "tuned.json", {"lr": 2 * GA_LR})
    code, out, err = cli("bench", "digits", "--strategies", "gradient_ascent", "--seeds", "1", "--no-progress",
                         "--tuned", str(f), "--out", str(tmp_path / "r.json"))
    assert code == 0, err
    res = load_results(tmp_path / "r.json")
    assert [r["hparams"]["lr"] for r in by(res["rows"], variant="tuned")] == [2 * GA_LR]
    assert res["provenance"]["runs"][-1]["grid"]["tuned"]["trials"] == 7
    assert "tuned" in out  # the printed table gets a variant column
    code, _, err = cli("bench", "digits", "--strategies", "gradient_ascent", "--seeds", "1", "--tuned", str(tmp_path / "nope.json"))
    assert code == 2 and "nope.json" in err


# ---------------------------------------------------------------- resume keys
def test_hash_is_after_defaults():
    h = lambda st, hp, se="full", shp=None, **kw: row_hash(**{**dict(
        strategy=st, selector=se, hparams=resolved_hparams(STRATEGIES, st, hp), options=bench_options("digits", {}),
        selector_hparams=resolved_hparams(SELECTORS, se, shp), budget="equal-steps", variant="default"), **kw})
    assert h("gradient_ascent", {}) == h("gradient_ascent", {"lr": GA_LR})
    assert h("gradient_ascent", {}) != h("gradient_ascent", {"lr": GA_LR * 2})
    assert h("npo.kl", {}) == h("npo.kl", {"retain_loss": "kl"})  # a preset's own value is its default
    assert h("npo.kl", {}) != h("npo", {})
    epochs = STRATEGIES.get("gradient_ascent")[0].defaults["epochs"]
    assert h("gradient_ascent", {}) == h("gradient_ascent", {"epochs": epochs})
    assert h("gradient_ascent", {"lr": 1}) == h("gradient_ascent", {"lr": 1.0})  # a float default: 1 and 1.0 are one value
    assert bench_options("digits", {"forget_class": 0}) == bench_options("digits", {})
    assert bench_options("digits", {"forget_class": 3}) != bench_options("digits", {})


def test_explicit_default_reuses_rows_and_a_change_reruns_them(tmp_path):
    out = str(tmp_path / "r.json")
    args = ["bench", "digits", "--strategies", "gradient_ascent,finetune", "--seeds", "1", "--no-progress", "--out", out]
    assert cli(*args)[0] == 0
    first = load_results(out)["rows"]
    code, _, err = cli(*args, "--hp", f"gradient_ascent.lr={GA_LR}", "--option", "forget_class=0")
    assert code == 0 and "other settings" not in err
    assert load_results(out)["rows"] == first  # nothing was rerun
    code, _, err = cli(*args, "--hp", f"gradient_ascent.lr={GA_LR / 2}")
    assert code == 0 and "1 of the rows" in err and "rerunning" in err
    rows = load_results(out)["rows"]
    assert len(rows) == len(first) and [row_key(r) for r in rows] == [row_key(r) for r in first]  # replaced in place
    assert by(rows, strategy="finetune") == by(first, strategy="finetune")
    assert by(rows, strategy="gradient_ascent")[0]["hparams"]["lr"] == GA_LR / 2


def test_error_row_from_a_typo_is_rerun_once_fixed(tmp_path):
    out = tmp_path / "r.json"
    bad = run_bench(**SMALL, hparams={"gradient_ascent": {"lrr": 1.0}}, out=out)
    assert by(bad["rows"], strategy="gradient_ascent")[0]["status"] == "error"
    fixed = run_bench(**SMALL, out=out)  # no --retry-errors needed: the settings differ
    assert by(fixed["rows"], strategy="gradient_ascent")[0]["status"] == "ok"


def test_benchmark_options_and_version_decide_the_row(tmp_path, monkeypatch):
    out = tmp_path / "r.json"
    first = run_bench(**SMALL, out=out)
    assert all(r["options"]["forget_class"] == 0 for r in first["rows"])
    monkeypatch.setattr(erasus, "__version__", "999.0")
    err = io.StringIO()
    with contextlib.redirect_stderr(err): run_bench(**SMALL, out=out)
    assert "3 of the rows" in err.getvalue()  # base, retrain and the strategy row


def test_rows_without_hash_are_stale(tmp_path):
    "Files written before config hashes: every row of the grid is rerun."
    out = tmp_path / "r.json"
    res = run_bench(**SMALL, out=out)
    save_results(out, dict(res, rows=[{k: v for k, v in r.items() if k != "config_hash"} for r in res["rows"]]))
    err = io.StringIO()
    with contextlib.redirect_stderr(err): again = run_bench(**SMALL, out=out)
    assert "3 of the rows" in err.getvalue() and all(r.get("config_hash") for r in again["rows"])


def test_row_records_what_auto_chose(class_sc):
    "A selector's record of its choice (auto: which selector and why) lands in the benchmark row."
    row = run_row(class_sc, "negative_gradient", "auto", 0.2, hparams=dict(steps=5))
    assert row["status"] == "ok", row["error"]
    assert row["selection_info"]["chose"] in SELECTORS and row["selection_info"]["why"]
    assert "selection_info" not in run_row(class_sc, "negative_gradient", "random", 0.2, hparams=dict(steps=5))
