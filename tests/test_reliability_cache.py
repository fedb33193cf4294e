"""Issue 8, items 4 and 9: the model cache verifies its entries, and classifiers may return tuples, dicts or objects.

Every cache test uses its own temporary cache (`cache=tmp_path`), so the shared cache is never touched.
"""
import inspect
import json
import os
import stat
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import erasus.models as models
import erasus.tasks as tasks
from erasus.api import unlearn
from erasus.core import state_equal
from erasus.models import MLP, CacheWarning, cached_model, config_hash, save_state, train
from erasus.tasks import ClassificationTask, infer_task, probe

CONFIG = dict(name="xor", seed=0)


def make():
    "The same initial weights on every call, so a rebuild can be compared with a clean build."
    torch.manual_seed(0)
    return MLP(2, 8, 2)


def xor_data():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(128, 2, generator=g)
    return X, (X[:, 0] * X[:, 1] > 0).long()


class Counter:
    "A `fit` that counts its calls."
    def __init__(self): self.calls = 0
    def __call__(self, m):
        self.calls += 1
        return train(m, ClassificationTask(2), xor_data(), epochs=2, seed=0)


def build(cache, config=CONFIG, make=make, fit=None):
    "cached_model's (model, info) and the messages of the CacheWarnings it raised."
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        model, info = cached_model(config, make, fit or Counter(), cache=cache)
    return model, info, [str(w.message) for w in ws if issubclass(w.category, CacheWarning)]


def entry(cache, config=CONFIG):
    key = config_hash(config)
    return Path(cache) / f"{key}.safetensors", Path(cache) / f"{key}.json"


@pytest.fixture
def clean(tmp_path):
    "A clean build in its own cache: (cache dir, model)."
    cache = tmp_path / "clean"
    model, info, ws = build(cache)
    assert info["cached"] is False and ws == [] and "sha256" in json.loads(entry(cache)[1].read_text())
    return cache, model


def _flip(data):
    data = bytearray(data); data[-3] ^= 0xFF; return bytes(data)


def _other_config(cache, path, meta):
    other, _, _ = build(cache, dict(CONFIG, seed=1))
    path.write_bytes(entry(cache, dict(CONFIG, seed=1))[0].read_bytes())


def _other_arch(cache, path, meta):
    torch.manual_seed(0)
    save_state(MLP(2, 16, 2), path, dict(key=config_hash(CONFIG)))


def _legacy(meta):
    "Drop what checksummed entries record, as in an entry written before checksums existed."
    info = json.loads(meta.read_text()); info.pop("sha256"); info.pop("arch"); meta.write_text(json.dumps(info))


CORRUPTIONS = {
    "flipped byte": lambda cache, path, meta: path.write_bytes(_flip(path.read_bytes())),
    "flipped header byte": lambda cache, path, meta: path.write_bytes(b"\x00" + path.read_bytes()[1:]),
    "truncated": lambda cache, path, meta: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
    "empty": lambda cache, path, meta: path.write_bytes(b""),
    "another model's file": _other_config,
    "another architecture": _other_arch,
    "legacy, another model's file": lambda cache, path, meta: (_legacy(meta), _other_config(cache, path, meta)),
    "legacy, another architecture": lambda cache, path, meta: (_legacy(meta), _other_arch(cache, path, meta)),
    "legacy, truncated": lambda cache, path, meta: (_legacy(meta), path.write_bytes(path.read_bytes()[:100])),
    "metadata garbage": lambda cache, path, meta: meta.write_bytes(os.urandom(64)),
    "metadata missing": lambda cache, path, meta: meta.unlink(),
    "model file missing": lambda cache, path, meta: path.unlink(),
}


@pytest.mark.parametrize("how", list(CORRUPTIONS))
def test_corrupt_entry_is_named_and_rebuilt(tmp_path, clean, how):
    cache = tmp_path / "cache"
    build(cache)
    path, meta = entry(cache)
    CORRUPTIONS[how](cache, path, meta)
    fit = Counter()
    model, info, ws = build(cache, fit=fit)
    # 1. reported once, by path; retrained, not loaded
    assert len(ws) == 1 and (str(path) in ws[0] or str(meta) in ws[0]), ws
    assert fit.calls == 1 and info["cached"] is False
    # 2. the same model a clean build gives
    assert state_equal(model, clean[1])
    # 3. the rebuilt entry is clean: it loads, verified, without training or warnings
    fit = Counter()
    again, info, ws = build(cache, fit=fit)
    assert (fit.calls, info["cached"], ws) == (0, True, []) and state_equal(again, clean[1])


def test_legacy_entry_loads_and_is_upgraded(tmp_path, clean):
    cache = tmp_path / "cache"
    build(cache)
    _, meta = entry(cache)
    _legacy(meta)
    fit = Counter()
    model, info, ws = build(cache, fit=fit)
    assert (fit.calls, info["cached"], ws) == (0, True, []) and state_equal(model, clean[1])
    upgraded = json.loads(meta.read_text())
    assert upgraded["sha256"] == models.hashlib.sha256(entry(cache)[0].read_bytes()).hexdigest()
    assert upgraded["arch"] == models.state_signature(make())


def test_architecture_change_without_config_change_rebuilds(tmp_path):
    "A checksum-clean entry whose tensors no longer fit what `make()` builds is rebuilt, not a strict-load traceback."
    build(tmp_path)
    wider = lambda: (torch.manual_seed(0), MLP(2, 16, 2))[1]
    fit = Counter()
    model, info, ws = build(tmp_path, make=wider, fit=fit)
    assert len(ws) == 1 and "another architecture" in ws[0] and str(entry(tmp_path)[0]) in ws[0]
    assert fit.calls == 1 and model[0].out_features == 16


def test_load_state_names_the_file(tmp_path):
    path = save_state(make(), tmp_path / "m.safetensors")
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(ValueError, match=str(path)): models.load_state(make(), path)
    save_state(MLP(2, 16, 2), path)
    with pytest.raises(RuntimeError, match=str(path)): models.load_state(make(), path)


# --- a read-only cache ------------------------------------------------------------------------------------------

def _writes_blocked(cache: Path) -> bool:
    "After chmod a-w, can this process still create files in `cache`? (root can)"
    probe_file = cache / ".write-probe"
    try: probe_file.touch()
    except OSError: return True
    probe_file.unlink()
    return False


@pytest.fixture
def read_only(monkeypatch):
    """Make a cache read-only: chmod -R a-w where that stops writes; as root (where it does not), refuse every
    write erasus.models attempts. Yields a function that applies it and returns the list of attempted writes."""
    undo, attempts = [], []

    def apply(cache: Path):
        for p in [cache, *cache.rglob("*")]:
            undo.append((p, p.stat().st_mode)); p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        if _writes_blocked(cache): return attempts
        # root: simulate, refusing (and recording) every write the cache code can make
        def refuse(what):
            def fail(*args, **kw):
                attempts.append((what, str(args[0]) if args else ""))
                raise PermissionError(13, "Permission denied (simulated read-only cache)", str(args[0]) if args else "")
            return fail
        real_open = open
        def ro_open(file, mode="r", *args, **kw):
            if any(c in mode for c in "wax+"): return refuse("open")(file)
            return real_open(file, mode, *args, **kw)
        monkeypatch.setattr(models, "open", ro_open, raising=False)
        for name in ["save_state", "atomic_write_text", "file_lock"]: monkeypatch.setattr(models, name, refuse(name))
        return attempts

    yield apply
    for p, mode in reversed(undo): p.chmod(mode)


def _listing(cache):
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in cache.iterdir()}


def test_read_only_cache_with_everything_present_loads(tmp_path, clean, read_only):
    cache = tmp_path / "cache"
    build(cache)
    before = _listing(cache)
    attempts = read_only(cache)
    fit = Counter()
    model, info, ws = build(cache, fit=fit)
    assert (fit.calls, info["cached"], ws) == (0, True, []) and state_equal(model, clean[1])
    assert attempts == [] and _listing(cache) == before  # nothing written, nothing even attempted


def test_read_only_cache_with_a_legacy_entry_loads(tmp_path, clean, read_only):
    cache = tmp_path / "cache"
    build(cache)
    _legacy(entry(cache)[1])
    read_only(cache)
    model, info, ws = build(cache)
    assert (info["cached"], ws) == (True, []) and state_equal(model, clean[1])  # the upgrade is skipped quietly


@pytest.mark.parametrize("how", ["missing", "flipped byte"])
def test_read_only_cache_needing_a_build_trains_in_memory(tmp_path, clean, read_only, how):
    cache = tmp_path / "cache"
    build(cache, dict(CONFIG, other=1))  # the folder exists, holding some other entry
    if how == "flipped byte":
        build(cache)
        path, meta = entry(cache)
        CORRUPTIONS["flipped byte"](cache, path, meta)
    before = _listing(cache)
    read_only(cache)
    fit = Counter()
    model, info, ws = build(cache, fit=fit)
    assert len(ws) == 1 and str(cache) in ws[0] and "not stored" in ws[0], ws
    if how == "flipped byte": assert str(entry(cache)[0]) in ws[0] and "checksum" in ws[0]
    assert fit.calls == 1 and info["stored"] is False and info["cached"] is False
    assert state_equal(model, clean[1]) and _listing(cache) == before


# --- models returning tuples, dicts, objects with .logits ---------------------------------------------------------

class Wrap(nn.Module):
    "`net` with its logits packed by `pack`."
    def __init__(self, net, pack):
        super().__init__(); self.net, self.pack = net, pack

    def forward(self, x): return self.pack(self.net(x))


class ModelOutput:
    "What a Hugging Face ModelOutput looks like to erasus: an object with `.logits` (and other fields)."
    def __init__(self, logits): self.logits, self.loss, self.hidden_states = logits, None, None


PACKS = {
    "tuple": lambda u: (u, u.detach().sum()),
    "dict": lambda u: {"logits": u, "hidden": u.detach()},
    "object with .logits": ModelOutput,
}


def _run(model, small, **kw):
    p = small
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return unlearn(model, p.forget, p.retain, strategy="gradient_ascent", steps=3, test=p.test, **kw)


def _unwrapped(model):
    return {k.removeprefix("net."): v for k, v in model.state_dict().items()}


@pytest.mark.parametrize("kind", list(PACKS))
def test_wrapped_outputs_unlearn_like_the_plain_model(small, kind):
    ref = _run(small.model, small)
    res = _run(Wrap(small.model, PACKS[kind]), small)
    a, b = _unwrapped(res.model), ref.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in b)
    assert (res.forget_acc, res.steps) == (ref.forget_acc, ref.steps)


def test_output_key_picks_another_entry(small):
    ref = _run(small.model, small)
    res = _run(Wrap(small.model, lambda u: {"scores": u}), small, task=ClassificationTask(10, output_key="scores"))
    a, b = _unwrapped(res.model), ref.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_model_returning_a_string_refuses_clearly(small):
    with pytest.raises(TypeError, match="returned a str, not logits"):
        _run(Wrap(small.model, str), small)
    with pytest.raises(TypeError, match=r"forget: the model returned a str"):
        ClassificationTask(10).validate(Wrap(small.model, str), small.forget, "forget")
    with pytest.raises(TypeError, match=r"keys \['scores'\].*output_key"):
        infer_task(Wrap(small.model, lambda u: {"scores": u}), small.forget)


def test_every_classification_method_reads_logits_through_one_helper():
    src = inspect.getsource(ClassificationTask)
    assert src.count("model(") == 1 and "read_logits(model(x), self.output_key)" in src


def test_tasks_never_set_modes_by_hand():
    src = inspect.getsource(tasks)
    assert ".eval()" not in src and ".train(" not in src


def test_probe_and_validate_keep_every_submodule_mode():
    "A frozen batch norm inside a training model and MC-dropout inside an eval model keep their flags (core.eval_mode)."
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    for top, inner in [(True, False), (False, True)]:
        net.train(top); net[1].train(inner); net[2].train(inner)
        modes = [m.training for m in net.modules()]
        probe(net, x); ClassificationTask().validate(net, (x, y), "forget"); infer_task(net, (x, y))
        assert [m.training for m in net.modules()] == modes
