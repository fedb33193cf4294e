"""Fair tuning: bad input fails before any training; a tiny run writes a file `load_tuned` reads; same sampler seed, same result."""
import argparse
import json
import sys

import pytest

pytest.importorskip("optuna")

import erasus.tune as T  # noqa: E402
from erasus.tune import add_tune_parser, load_tuned, run_tune_cli, tune  # noqa: E402


@pytest.fixture
def no_training(monkeypatch):
    "Make any attempt to build a scenario or unlearn fail the test."
    def boom(*a, **k): raise AssertionError("trained before checking the input")
    monkeypatch.setattr(T, "shared_scenario", boom)
    monkeypatch.setattr(T, "run_row", boom)


@pytest.mark.parametrize("kwargs, err, msg", [
    (dict(trials=0), ValueError, "trials must be at least 1"),
    (dict(trials=-3), ValueError, "trials must be at least 1"),
    (dict(trials=2.0), TypeError, "trials must be an int"),
    (dict(seeds=[0, 100]), ValueError, "overlap in [0]"),
    (dict(seeds=range(3), report_seeds=range(2, 5)), ValueError, "overlap in [2]"),
    (dict(seeds=[]), ValueError, "at least one seed"),
    (dict(seeds=[100, 100]), ValueError, "repeat a seed"),
    (dict(seeds=100), TypeError, "list of int seeds"),
    (dict(strategies=["finetun"]), KeyError, "did you mean finetune"),
    (dict(scenario="klass"), ValueError, "no scenario 'klass'"),
    (dict(workers=0), ValueError, "workers must be an int >= 1"),
])
def test_bad_input_before_training(no_training, kwargs, err, msg):
    args = dict(benchmark="digits", scenario="class", strategies=["finetune"], trials=2, seeds=[100])
    with pytest.raises(err, match=None) as e: tune(**{**args, **kwargs}, progress=False)
    assert msg in str(e.value)


def test_bad_registered_space_before_training(no_training, monkeypatch):
    entry, _ = T.STRATEGIES.get("finetune")
    monkeypatch.setitem(entry.extra, "space", dict(learning_rate=("log", 1e-4, 1e-1)))
    with pytest.raises(ValueError, match="'learning_rate' is not a hyperparameter"):
        tune("digits", "class", ["finetune"], trials=2, seeds=[100], progress=False)


def test_registered_space_is_used(monkeypatch):
    entry, _ = T.STRATEGIES.get("finetune")
    monkeypatch.setitem(entry.extra, "space", dict(lr=("log", 1e-3, 1e-1), optimizer=("cat", ["adam", "sgd"])))
    space, source = T.strategy_space("finetune")
    assert source == "registered" and space == dict(lr=["log", 1e-3, 1e-1], optimizer=["cat", ["adam", "sgd"]])


def cli(argv, capsys):
    p = argparse.ArgumentParser(prog="erasus")
    add_tune_parser(p.add_subparsers(dest="command", required=True))
    code = run_tune_cli(p.parse_args(["tune", *argv]))
    return code, *capsys.readouterr()


def test_cli_bad_input(no_training, capsys):
    code, _, err = cli(["digits", "--trials", "0", "--strategies", "finetune"], capsys)
    assert code == 2 and "trials must be at least 1" in err
    code, _, err = cli(["digits", "--seeds", "3,100", "--report-seeds", "5", "--strategies", "finetune"], capsys)
    assert code == 2 and "overlap in [3]" in err
    code, _, err = cli(["digits", "--seeds", "3", "--report-seeds", "0,1", "--strategies", "nope"], capsys)
    assert code == 2 and "unknown strategy 'nope'" in err


def test_cli_without_optuna(no_training, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` now raises ImportError
    code, _, err = cli(["digits", "--strategies", "finetune"], capsys)
    assert code == 2 and "pip install 'erasus[tune]'" in err


def test_tiny_run_writes_a_file_load_tuned_reads(tmp_path):
    out = tmp_path / "tuned.json"
    res = tune("digits", ["class", "random"], ["finetune", "ssd"], trials=2, seeds=[100], out=out, progress=False)
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(res))  # the file is the result, as strict JSON
    prov = saved["provenance"]
    assert prov["trials"] == 2 and prov["seeds"] == [100] and prov["report_seeds"] == [0, 1, 2, 3, 4]
    assert prov["scenarios"] == ["class", "random"] and prov["seconds"] > 0 and prov["sampler"]["name"] == "TPESampler"
    for sc in ("class", "random"):
        for st in ("finetune", "ssd"):
            r = saved["tuned"][sc][st]
            assert r["trials"] == 2 and r["failed"] == 0 and r["space_source"] == T.strategy_space(st)[1]
            assert r["avg_gap"] <= r["default_avg_gap"] + 1e-12 and set(r["hparams"]) == set(r["space"])
    tuned = load_tuned(out)
    assert tuned == {sc: {st: saved["tuned"][sc][st]["hparams"] for st in ("finetune", "ssd")} for sc in ("class", "random")}
    assert list(load_tuned(out, "random")) == ["random"]
    with pytest.raises(ValueError, match="no tuned hyperparameters for scenario original"): load_tuned(out, "original")


def test_failed_trials_are_counted(tmp_path, monkeypatch):
    monkeypatch.setitem(T.STRATEGIES.get("finetune")[0].extra, "space", dict(lr=("log", 1e-3, 1e-1)))
    real = T.run_row
    def flaky(sc, strategy, hparams=None, **kw):  # every configuration but the defaults fails
        lr = (hparams or {}).get("lr")
        return real(sc, strategy, hparams=hparams, **kw) if lr == T.STRATEGIES.get(strategy)[0].defaults["lr"] else \
            dict(status="error", error="RuntimeError: boom", avg_gap=None)
    monkeypatch.setattr(T, "run_row", flaky)
    r = tune("digits", "class", ["finetune"], trials=3, seeds=[100], progress=False)["tuned"]["class"]["finetune"]
    assert r["trials"] == 3 and r["failed"] == 2 and r["avg_gap"] == r["default_avg_gap"]
    assert [h["error"] for h in r["history"]] == [None, "RuntimeError: boom", "RuntimeError: boom"]


def test_malformed_files(tmp_path):
    p = tmp_path / "bad.json"
    for text, msg in [("not json", "not a tuned-hyperparameters file"), ("[1, 2]", "no 'tuned' mapping"),
                      ('{"tuned": {"class": [1]}}', "tuned['class'] should map strategies"),
                      ('{"tuned": {"class": {"finetune": {"hparams": 3}}}}', "has no 'hparams' mapping")]:
        p.write_text(text)
        with pytest.raises(ValueError) as e: load_tuned(p)
        assert msg in str(e.value) and str(p) in str(e.value)
    with pytest.raises(ValueError, match="no such tuned-hyperparameters file"): load_tuned(tmp_path / "missing.json")


def test_deterministic():
    run = lambda seed: tune("digits", "class", ["gradient_ascent"], trials=4, seeds=[100], sampler_seed=seed,
                            progress=False)["tuned"]["class"]["gradient_ascent"]
    a, b, c = run(0), run(0), run(1)
    assert a["hparams"] == b["hparams"] and a["avg_gap"] == b["avg_gap"]
    assert [h["params"] for h in a["history"]] == [h["params"] for h in b["history"]]
    assert [h["params"] for h in a["history"]][1:] != [h["params"] for h in c["history"]][1:]  # the seed matters
