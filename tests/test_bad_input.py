"""Bad input gives a clear ValueError/TypeError naming the problem; checkpoints are safetensors; the runner survives errors and resumes."""
import json
import struct

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

import erasus
from erasus.api import unlearn
from erasus.bench import get_scenario, load_results, row_key, run_bench, run_row, save_results
from erasus.core import STRATEGIES, NonFiniteLossError, snapshot, state_equal
from erasus.models import benchmark_model, load_state, save_state
from erasus.tasks import ClassificationTask

CT = ClassificationTask


@pytest.fixture
def data(small):
    "model, (Xf, yf), (Xr, yr) of the small class problem."
    return small.model, small.forget, small.retain


def untouched(model, before):
    return all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_top_level_unlearn():
    "The one-line entry point is `erasus.unlearn`."
    from erasus.api import unlearn as api_unlearn
    assert erasus.unlearn is api_unlearn


# ---------------------------------------------------------------- the data
@pytest.mark.parametrize("which", ["forget", "retain"])
def test_empty_split(which, data):
    model, f, r = data
    args = dict(forget=f, retain=r)
    args[which] = tuple(t[:0] for t in args[which])
    with pytest.raises(ValueError, match=rf"{which} is empty"):
        unlearn(model, args["forget"], args["retain"])


def test_empty_dataset(data):
    model, f, r = data
    with pytest.raises(ValueError, match="forget is empty"):
        unlearn(model, PairDataset(f[0][:0], f[1][:0]), r)


def test_overlap(data):
    model, (xf, yf), (xr, yr) = data
    with pytest.raises(ValueError, match=r"forget and retain overlap in 3 examples"):
        unlearn(model, (xf, yf), (torch.cat([xr, xf[5:8]]), torch.cat([yr, yf[5:8]])))


@pytest.mark.parametrize("which", ["forget", "retain"])
def test_mismatched_lengths_in_tuple(which, data):
    model, (xf, yf), (xr, yr) = data
    f, r = ((xf, yf[:-1]), (xr, yr)) if which == "forget" else ((xf, yf), (xr[:-2], yr))
    with pytest.raises(ValueError, match=rf"{which}: tensors differ in length"):
        unlearn(model, f, r)


def test_different_feature_shapes(data):
    model, (xf, yf), (xr, yr) = data
    with pytest.raises(ValueError, match=r"retain tensor 0 has rows of shape \(16,\), forget has \(32,\)"):
        unlearn(model, (xf, yf), (xr[:, :16], yr))
    with pytest.raises(ValueError, match=r"test tensor 0 has rows of shape"):
        unlearn(model, (xf, yf), (xr, yr), test=(xr[:, :16], yr))


def test_different_number_of_tensors(data):
    model, (xf, yf), (xr, yr) = data
    with pytest.raises(ValueError, match="retain has 3 tensors but forget has 2"):
        unlearn(model, (xf, yf), (xr, yr, yr))


BAD_INPUTS = {"width": lambda x: x[:, :16], "float64": lambda x: x.double()}


@pytest.mark.parametrize("bad", sorted(BAD_INPUTS))
def test_inputs_model_cannot_take_with_task(bad, data):
    model, (xf, yf), (xr, yr) = data
    f = BAD_INPUTS[bad]
    with pytest.raises(ValueError, match=r"forget: the model cannot take inputs"):
        unlearn(model, (f(xf), yf), (f(xr), yr), task=CT())


@pytest.mark.parametrize("bad", sorted(BAD_INPUTS))
def test_inputs_model_cannot_take_inferred_task(bad, data):
    model, (xf, yf), (xr, yr) = data
    f = BAD_INPUTS[bad]
    with pytest.raises((ValueError, TypeError), match=r"forget.*model cannot take inputs"):
        unlearn(model, (f(xf), yf), (f(xr), yr))


@pytest.mark.parametrize("task", [None, CT(), CT(10)])
@pytest.mark.parametrize("which,shift", [("forget", 10), ("forget", -1), ("retain", 10)])
def test_labels_out_of_range(which, shift, task, data):
    model, (xf, yf), (xr, yr) = data
    f, r = ((xf, yf + shift), (xr, yr)) if which == "forget" else ((xf, yf), (xr, yr + shift))
    with pytest.raises(ValueError, match=rf"{which}: labels must lie in \[0, 10\)"):
        unlearn(model, f, r, task=task)


def test_task_class_count_differs_from_model(data):
    model, f, r = data
    with pytest.raises(ValueError, match="model returns 10 logits but the task has 5 classes"):
        unlearn(model, f, r, task=CT(5))


def test_float_labels(data):
    model, (xf, yf), (xr, yr) = data
    with pytest.raises(TypeError, match=r"forget: labels must be a 1-D integer tensor, got torch.float32"):
        unlearn(model, (xf, yf.float()), (xr, yr.float()), task=CT())
    with pytest.raises(TypeError, match=r"cannot infer the task.*pass task="):  # without task=: asks for one
        unlearn(model, (xf, yf.float()), (xr, yr.float()))


def test_missing_labels(data):
    model, (xf, yf), (xr, yr) = data
    with pytest.raises(TypeError, match="cannot infer the task"):
        unlearn(model, xf, xr)
    with pytest.raises(ValueError, match=r"forget: classification data must be \(inputs, labels\)"):
        unlearn(model, xf, xr, task=CT())


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16])
def test_narrow_integer_labels_work(dtype, data):
    model, (xf, yf), (xr, yr) = data
    res = unlearn(model, (xf, yf.to(dtype)), (xr, yr.to(dtype)), strategy="gradient_ascent", steps=5)
    assert state_equal(res.model, unlearn(model, (xf, yf), (xr, yr), strategy="gradient_ascent", steps=5).model)


def test_uint8_labels_work(data):
    model, (xf, yf), (xr, yr) = data
    res = unlearn(model, (xf, yf.to(torch.uint8)), (xr, yr.to(torch.uint8)), strategy="gradient_ascent", steps=5)
    assert not state_equal(res.model, model)


def test_not_a_model(data):
    _, f, r = data
    with pytest.raises(TypeError, match="model must be a torch nn.Module"):
        unlearn(lambda x: x, f, r)


def test_bad_batch_size(data):
    model, f, r = data
    with pytest.raises(ValueError, match="batch_size must be (a positive int|an int >= 1)"):
        unlearn(model, f, r, batch_size=0)


# ---------------------------------------------------------------- unlearn's guards against a misbehaving strategy
def _rogue(monkeypatch, fn):
    from erasus.core import Entry
    monkeypatch.setitem(STRATEGIES.entries, "_rogue", Entry("_rogue", fn, "strategy", "data", (), "none", "rogue"))


@pytest.mark.parametrize("fn,err,match", [
    (lambda p: p.model, RuntimeError, "returned the caller's model"),
    (lambda p: "model", TypeError, "returned str, not a model"),
    (lambda p: (p.model.requires_grad_(False)[0].weight.add_(1.0), p.clone_model())[1], RuntimeError, "modified the caller's model"),
])
def test_unlearn_guards(fn, err, match, make_small, class_sc, monkeypatch):
    small = make_small(class_sc)  # a private problem: the rogue strategy may damage its model
    small.model = benchmark_model(32, 10, seed=0)
    _rogue(monkeypatch, fn)
    with pytest.raises(err, match=match):
        unlearn(small, None, None, strategy="_rogue")


# ---------------------------------------------------------------- names
def test_unknown_strategy(small):
    with pytest.raises(KeyError, match="unknown strategy 'gradient_acent'; did you mean gradient_ascent"):
        unlearn(small, None, None, strategy="gradient_acent")
    with pytest.raises(KeyError, match="unknown strategy 'zzzzzz'; known: .*finetune"):
        unlearn(small, None, None, strategy="zzzzzz")
    with pytest.raises(KeyError, match="no preset 'nope'"):
        unlearn(small, None, None, strategy="gradient_ascent.nope")


def test_unknown_selector(small):
    with pytest.raises(KeyError, match="unknown selector 'randm'; did you mean random"):
        unlearn(small, None, None, selector="randm", fraction=0.5)


def test_unknown_benchmark_and_scenario():
    with pytest.raises(KeyError, match="unknown benchmark 'digitz'; did you mean digits"):
        get_scenario("digitz", "class")
    with pytest.raises(ValueError, match="unknown digits scenario 'klass'; use random, class or original"):
        get_scenario("digits", "klass")
    with pytest.raises(ValueError, match="forget_class must be a digit 0-9, got 12"):
        get_scenario("digits", "class", forget_class=12)
    with pytest.raises(TypeError):
        get_scenario("digits", "class", nope=1)


def test_unknown_hyperparameter(data):
    model, f, r = data
    with pytest.raises(TypeError, match=r"strategy 'finetune' does not take nope; it takes lr, "):
        unlearn(model, f, r, strategy="finetune", nope=1)
    with pytest.raises(TypeError, match="selector 'random' does not take nope"):
        unlearn(model, f, r, selector="random", fraction=0.5, selector_kwargs=dict(nope=1))


def test_bad_hyperparameter_values(small):
    with pytest.raises(ValueError, match="beta must be in"):
        unlearn(small, None, None, strategy="negative_gradient", beta=2.0)
    with pytest.raises(ValueError, match="epochs must be an int >= "):
        unlearn(small, None, None, strategy="finetune", epochs=-1)
    with pytest.raises(ValueError, match="unknown optimizer 'adan'"):
        unlearn(small, None, None, strategy="finetune", optimizer="adan")


# ---------------------------------------------------------------- budgets
@pytest.mark.parametrize("fraction", [0, 0.0, -0.5, 1.5, float("nan")])
def test_fraction_out_of_range(fraction, small):
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
        unlearn(small, None, None, fraction=fraction)


def test_k_larger_than_pool(small):
    n = small.n_forget
    with pytest.raises(ValueError, match=rf"k={n + 1} is larger than the pool of {n} forget examples"):
        unlearn(small, None, None, k=n + 1)
    with pytest.raises(ValueError, match="k must be at least 1"):
        unlearn(small, None, None, k=0)


# ---------------------------------------------------------------- non-finite losses
def test_divergence_raises_nonfinite(small):
    before, res = snapshot(small.model), None
    with pytest.raises(NonFiniteLossError, match=r"forget loss \(ascent\) became .* at step \d+; lower the learning rate"):
        res = unlearn(small, None, None, strategy="gradient_ascent", optimizer="sgd", lr=1e4, target_acc=None)
    assert res is None and untouched(small.model, before)
    assert issubclass(NonFiniteLossError, FloatingPointError)


class NaNOut(nn.Module):
    "Wraps a model and returns NaN logits."
    def __init__(self, inner):
        super().__init__(); self.inner = inner

    def forward(self, x):
        return self.inner(x) * float("nan")


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_nan_model_raises_nonfinite(name, data):
    model, f, r = data
    if not STRATEGIES.get(name)[0].supports("classification"): pytest.skip("not a classification strategy")
    if "trajectory" in str(STRATEGIES.get(name)[0].extra.get("needs", "")): pytest.skip("needs a training trajectory (tests/test_trajectory.py)")
    nan_model = NaNOut(model)
    before, res = snapshot(nan_model), None
    with pytest.raises(NonFiniteLossError):
        res = unlearn(nan_model, f, r, strategy=name, task=CT())
    assert res is None and untouched(nan_model, before)


def test_run_row_records_nonfinite(class_sc):
    row = run_row(class_sc, "gradient_ascent", hparams=dict(optimizer="sgd", lr=1e4, target_acc=None))
    assert row["status"] == "error" and row["error"].startswith("NonFiniteLossError")


# ---------------------------------------------------------------- datasets
class PairDataset(Dataset):
    "A map-style dataset (not a TensorDataset) yielding (tensor, int)."
    def __init__(self, x, y): self.x, self.y = x, y
    def __len__(self): return len(self.x)
    def __getitem__(self, i): return self.x[i], int(self.y[i])


def test_map_style_dataset(data):
    model, (xf, yf), (xr, yr) = data
    before = snapshot(model)
    res = unlearn(model, PairDataset(xf, yf), PairDataset(xr, yr), strategy="gradient_ascent", steps=5)
    ref = unlearn(model, (xf, yf), (xr, yr), strategy="gradient_ascent", steps=5)
    assert state_equal(res.model, ref.model) and not state_equal(res.model, model) and untouched(model, before)
    assert res.problem.forget[1].dtype == torch.int64
    res2 = unlearn(model, TensorDataset(xf, yf), TensorDataset(xr, yr), strategy="gradient_ascent", steps=5)
    assert state_equal(res2.model, ref.model)


def test_not_data(data):
    model, f, _ = data
    with pytest.raises(TypeError, match="retain must be a tuple of tensors"):
        unlearn(model, f, 5)


# ---------------------------------------------------------------- checkpoints: safetensors, no pickle
def _safetensors_header(path):
    raw = path.read_bytes()
    assert not raw.startswith(b"\x80") and not raw.startswith(b"PK"), f"{path} looks like a pickle / torch zip"
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n])


def test_save_load_state_roundtrip(tmp_path):
    a, b = benchmark_model(32, 10, seed=1), benchmark_model(32, 10, seed=2)
    assert not state_equal(a, b)
    path = save_state(a, tmp_path / "sub" / "m.safetensors", metadata=dict(key="k1"))
    head = _safetensors_header(path)
    assert set(head) - {"__metadata__"} == set(a.state_dict()) and head["__metadata__"] == {"key": "k1"}
    assert load_state(b, path) is b and state_equal(a, b)
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.safetensors"]  # no temporary file left
    with pytest.raises(RuntimeError):  # strict: a model of another shape refuses the checkpoint
        load_state(benchmark_model(16, 10), path)


def test_cache_holds_only_safetensors_and_json(tmp_path, monkeypatch):
    monkeypatch.setenv("ERASUS_CACHE", str(tmp_path))
    opts = dict(n_forget=20, n_retain=40)
    sc = get_scenario("digits", "original", seed=0, **opts)
    assert sc.base_info["cached"] is False
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files and all(p.endswith((".safetensors", ".json", ".lock")) for p in files), files
    assert sum(p.endswith(".safetensors") for p in files) == 2  # base and oracle
    for p in tmp_path.glob("*.safetensors"): _safetensors_header(p)
    again = get_scenario("digits", "original", seed=0, cache=tmp_path, **opts)
    assert again.base_info["cached"] is True
    assert state_equal(again.problem.model, sc.problem.model) and state_equal(again.oracle, sc.oracle)
    assert sorted(p.name for p in tmp_path.iterdir()) == files


# ---------------------------------------------------------------- the runner
GRID = dict(benchmark="digits", scenarios=("class",), strategies=("gradient_ascent", "random_label"), seeds=[0], progress=False)


def test_run_row_error_is_a_row(class_sc):
    row = run_row(class_sc, "gradient_ascent", hparams={"nope": 1})
    assert row["status"] == "error" and "TypeError" in row["error"] and "nope" in row["error"]
    assert row["strategy"] == "gradient_ascent" and row["hparams"] == {"nope": 1}
    assert run_row(class_sc, "gradient_ascent")["status"] == "ok"


def test_run_bench_continues_after_error(tmp_path):
    res = run_bench(**GRID, hparams={"gradient_ascent": {"nope": 1}}, out=tmp_path / "r.json")
    by = {r["strategy"]: r for r in res["rows"]}
    assert set(by) == {"base", "retrain", "gradient_ascent", "random_label"}
    assert by["gradient_ascent"]["status"] == "error" and "nope" in by["gradient_ascent"]["error"]
    assert by["random_label"]["status"] == "ok"
    # retry_errors redoes only the failed row
    again = run_bench(**GRID, out=tmp_path / "r.json", retry_errors=True)
    by2 = {r["strategy"]: r for r in again["rows"]}
    assert by2["gradient_ascent"]["status"] == "ok" and by2["random_label"] == by["random_label"]


@pytest.fixture(scope="module")
def done_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "r.json"
    run_bench(**GRID, out=out)
    return out


def test_resume_does_not_redo(done_file):
    first = load_results(done_file)
    assert len(first["rows"]) == 4 and all(r["status"] == "ok" for r in first["rows"])
    second = run_bench(**GRID, out=done_file)
    assert second["rows"] == first["rows"]  # same rows, seconds included: nothing was rerun
    assert load_results(done_file)["rows"] == first["rows"]
    assert len(second["provenance"]["runs"]) == len(first["provenance"]["runs"]) + 1


def test_resume_completes_interrupted_file(done_file, tmp_path):
    full = load_results(done_file)
    keep = [r for r in full["rows"] if r["strategy"] in ("base", "gradient_ascent")]
    part = tmp_path / "part.json"
    save_results(part, dict(provenance=full["provenance"], rows=keep))
    res = run_bench(**GRID, out=part)
    rows = load_results(part)["rows"]
    assert rows[:len(keep)] == keep  # existing rows untouched, in place
    assert sorted(map(row_key, rows)) == sorted(map(row_key, full["rows"]))  # and the missing ones added
    assert len(rows) == len(full["rows"]) and res["rows"] == rows


@pytest.mark.parametrize("text,match", [
    ('{"provenance": {}, "rows": [{"benchmark": "dig', "not a valid results file"),
    ("", "not a valid results file"),
    ("[1, 2]", "not an erasus results file"),
    ('{"provenance": {}}', "has no 'rows'"),
])
def test_corrupt_results_file(text, match, tmp_path):
    out = tmp_path / "bad.json"; out.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_results(out)
    with pytest.raises(ValueError, match=match):
        run_bench(**GRID, out=out)
    assert out.read_text() == text  # the user's file is not overwritten


@pytest.mark.parametrize("text", ['{"provenance": {}, "rows": 5}', '{"provenance": {}, "rows": [{"a": 1}]}'])
def test_malformed_rows(text, tmp_path):
    out = tmp_path / "bad.json"; out.write_text(text)
    with pytest.raises(ValueError, match="results file"):
        run_bench(**GRID, out=out)


def test_results_file_without_provenance(done_file, tmp_path):
    out = tmp_path / "r.json"
    out.write_text(json.dumps(dict(rows=load_results(done_file)["rows"])))
    assert run_bench(**GRID, out=out)["rows"] == load_results(done_file)["rows"]


def test_results_are_strict_json(tmp_path):
    out = save_results(tmp_path / "r.json", dict(provenance={}, rows=[dict(seconds=float("nan"))]))
    def refuse(token): raise ValueError(f"non-standard JSON token {token}")
    assert json.loads(out.read_text(), parse_constant=refuse)["rows"][0]["seconds"] is None


@pytest.mark.parametrize("name", [n for n in STRATEGIES.names() if "epochs" in STRATEGIES.get(n)[0].defaults])
def test_float_epochs_is_a_clear_error(name, small):
    with pytest.raises(ValueError, match="epochs"):
        unlearn(small, None, None, strategy=name, epochs=2.5)


@pytest.mark.parametrize("name", [n for n in STRATEGIES.names() if "target_acc" in STRATEGIES.get(n)[0].defaults])
def test_bad_target_acc_is_a_clear_error(name, small):
    with pytest.raises(ValueError, match="target_acc"):
        unlearn(small, None, None, strategy=name, target_acc="half")
