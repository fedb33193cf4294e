"""Results files lose nothing: concurrent runs, merging, modes, symlinks, provenance per run, checks before training."""
import contextlib
import io
import json
import os
import stat
import subprocess
import sys
import threading
import time

import pytest

from erasus import bench
from erasus.bench import load_results, provenance, results_lock, row_key, run_bench, save_results
from erasus.cli import main

SMALL = dict(benchmark="digits", scenarios=["class"], strategies=["gradient_ascent"], seeds=[0], progress=False)
ROOT = os.geteuid() == 0


def cli(*argv):
    "Run `erasus ...` in this process: (exit code, stdout, stderr)."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def erasus_process(*argv):
    "`erasus ...` in a new Python process."
    return subprocess.Popen([sys.executable, "-c", "from erasus.cli import command; command()", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def no_training(monkeypatch):
    "Fail the test if the runner gets as far as building a scenario (which trains, or loads, models)."
    def refuse(*a, **k): raise AssertionError("the runner built a scenario before refusing the grid")
    monkeypatch.setattr(bench, "get_scenario", refuse)


# ---------------------------------------------------------------- concurrent runs, merging
def test_two_concurrent_benches_keep_every_row(tmp_path):
    out = str(tmp_path / "r.json")
    procs = [erasus_process("bench", "digits", "--scenario", "class", "--strategies", s, "--seeds", "1", "--no-progress",
                            "--out", out) for s in ("gradient_ascent", "finetune")]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (o, e) in zip(procs, results): assert p.returncode == 0, e
    res = load_results(out)
    assert sorted(r["strategy"] for r in res["rows"]) == ["base", "finetune", "gradient_ascent", "retrain"]
    runs = res["provenance"]["runs"]
    assert len(runs) == 2 and len({r["id"] for r in runs}) == 2
    assert {r["run"] for r in res["rows"]} <= {r["id"] for r in runs}
    assert {r["run"] for r in res["rows"] if r["strategy"] in ("gradient_ascent", "finetune")} == {r["id"] for r in runs}


def test_rows_written_meanwhile_are_merged(tmp_path, monkeypatch):
    "A writer that ignores the lock adds a row mid-run: the run's saves keep it."
    out = tmp_path / "r.json"
    real_row, written = bench.run_row, []
    def row_then_foreign_write(*a, **k):
        r = real_row(*a, **k)
        written.append(dict(benchmark="digits", scenario="class", seed=100 + len(written), strategy="someone_else",
                            selector="full", fraction=1.0, status="ok"))
        on_disk = load_results(out)
        save_results(out, dict(on_disk, rows=on_disk["rows"] + written[-1:]))
        return r
    monkeypatch.setattr(bench, "run_row", row_then_foreign_write)
    res = run_bench(**{**SMALL, "strategies": ["gradient_ascent", "finetune"]}, out=out)
    rows = load_results(out)["rows"]
    assert sorted((r["strategy"], r["seed"]) for r in rows) == [("base", 0), ("finetune", 0), ("gradient_ascent", 0),
                                                               ("retrain", 0), ("someone_else", 100), ("someone_else", 101)]
    assert res["rows"] == load_results(out)["rows"]


def test_second_run_waits_for_the_lock_and_says_so(tmp_path, capsys):
    out = tmp_path / "r.json"
    done = []
    with results_lock(out):
        t = threading.Thread(target=lambda: done.append(run_bench(**SMALL, out=out)))
        t.start()
        time.sleep(0.5)
        assert not done and not out.exists()  # it waits before writing anything
    t.join(120)
    assert done and len(load_results(out)["rows"]) == 3
    assert "waiting for another run writing" in capsys.readouterr().err


# ---------------------------------------------------------------- the file itself
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o664])
def test_file_mode_is_kept(mode, tmp_path):
    out = tmp_path / "r.json"
    run_bench(**SMALL, out=out)
    os.chmod(out, mode)
    run_bench(**{**SMALL, "strategies": ["finetune"]}, out=out)
    assert stat.S_IMODE(out.stat().st_mode) == mode and len(load_results(out)["rows"]) == 4


def test_symlinked_out_is_written_through(tmp_path):
    target, link = tmp_path / "data" / "r.json", tmp_path / "link.json"
    target.parent.mkdir(); link.symlink_to(target)
    run_bench(**SMALL, out=link)
    run_bench(**{**SMALL, "strategies": ["finetune"]}, out=link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert len(load_results(target)["rows"]) == 4
    assert (tmp_path / "data" / "r.json.lock").exists()  # one lock for every name of the file


def test_missing_folders_are_made(tmp_path):
    out = tmp_path / "a" / "b" / "r.json"
    run_bench(**SMALL, out=out)
    assert len(load_results(out)["rows"]) == 3


def test_out_is_a_directory(tmp_path, no_training):
    code, _, err = cli("bench", "digits", "--strategies", "finetune", "--seeds", "1", "--out", str(tmp_path))
    assert code == 2 and "is a directory" in err


def test_unwritable_places_are_refused_before_training(tmp_path, monkeypatch, no_training):
    "Simulated with os.access (root can write anywhere), then for real where the test does not run as root."
    ro_dir, ro_file = tmp_path / "ro", tmp_path / "ro.json"
    ro_dir.mkdir(); ro_file.write_text(json.dumps(dict(provenance={}, rows=[])))
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m, **k: False if str(p) in (str(ro_dir), str(ro_file)) else real(p, m, **k))
    with pytest.raises(ValueError, match="the folder .*ro is not writable"):
        run_bench(**SMALL, out=ro_dir / "r.json")
    with pytest.raises(ValueError, match="ro.json is read-only"):
        run_bench(**SMALL, out=ro_file)
    code, _, err = cli("bench", "digits", "--strategies", "finetune", "--seeds", "1", "--out", str(ro_dir / "sub" / "r.json"))
    assert code == 2 and "not writable" in err


@pytest.mark.skipif(ROOT, reason="root can write to read-only folders")
def test_read_only_folder_for_real(tmp_path, no_training):
    d = tmp_path / "ro"; d.mkdir(); os.chmod(d, 0o555)
    try:
        with pytest.raises(ValueError, match="not writable"):
            run_bench(**SMALL, out=d / "r.json")
    finally: os.chmod(d, 0o755)


def test_interrupt_says_how_to_resume(tmp_path, monkeypatch):
    out = tmp_path / "r.json"
    real_row = bench.run_row
    calls = []
    def interrupt_second(*a, **k):
        calls.append(1)
        if len(calls) == 2: raise KeyboardInterrupt
        return real_row(*a, **k)
    monkeypatch.setattr(bench, "run_row", interrupt_second)
    code, _, err = cli("bench", "digits", "--strategies", "gradient_ascent,finetune", "--seeds", "1", "--no-progress", "--out", str(out))
    assert code == 130 and f"interrupted; 3 rows in {out}; rerun the same command to resume" in err
    monkeypatch.setattr(bench, "run_row", real_row)
    assert cli("bench", "digits", "--strategies", "gradient_ascent,finetune", "--seeds", "1", "--no-progress", "--out", str(out))[0] == 0
    assert len(load_results(out)["rows"]) == 4


# ---------------------------------------------------------------- provenance
def test_one_provenance_entry_per_run(tmp_path):
    out = tmp_path / "r.json"
    first = run_bench(**SMALL, out=out, command=["first"])
    run1 = dict(first["provenance"]["runs"][0])
    second = run_bench(**{**SMALL, "strategies": ["finetune"]}, out=out, command=["second"])
    runs = second["provenance"]["runs"]
    assert [r["command"] for r in runs] == ["first", "second"] and runs[0] == run1  # earlier runs untouched
    assert second["provenance"]["command"] == "second" and second["provenance"]["run"] == runs[1]["id"]
    ids = {r["strategy"]: r["run"] for r in second["rows"]}
    assert ids["gradient_ascent"] == ids["base"] == runs[0]["id"] and ids["finetune"] == runs[1]["id"]
    assert runs[1]["grid"]["strategies"] == ["finetune"] and runs[1]["reused"] == 2 and runs[1]["rows"] == 1


def test_old_provenance_format_is_kept(tmp_path):
    out = tmp_path / "r.json"
    first = run_bench(**SMALL, out=out)
    old = dict(provenance=dict(erasus="0.0.1", command="erasus bench old", started="2024-01-01T00:00:00Z",
                               runs=["2023-12-31T00:00:00Z", "2024-01-01T00:00:00Z"]), rows=first["rows"])
    save_results(out, old)
    runs = run_bench(**SMALL, out=out)["provenance"]["runs"]
    assert [r["id"] for r in runs[:2]] == old["provenance"]["runs"]
    assert runs[1]["command"] == "erasus bench old" and "command" not in runs[0]


def test_git_runs_on_erasus_source_not_the_callers_repository(tmp_path, monkeypatch):
    "An untrusted repository in the current folder: its fsmonitor hook never runs, its commit is not recorded."
    if subprocess.run(["git", "--version"], capture_output=True).returncode: pytest.skip("no git")
    repo, marker = tmp_path / "repo", tmp_path / "hook_ran"
    repo.mkdir()
    git = lambda *a: subprocess.run(["git", "-C", str(repo), *a], capture_output=True, text=True, check=True).stdout.strip()
    git("init", "-q"); (repo / "f").write_text("x")
    git("add", "f"); git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    hook = repo / "hook.sh"; hook.write_text(f"#!/bin/sh\ntouch {marker}\n"); hook.chmod(0o755)
    git("config", "core.fsmonitor", str(hook))
    monkeypatch.chdir(repo)
    p = provenance(["x"])
    assert not marker.exists()
    assert p["git_commit"] != git("rev-parse", "HEAD")


# ---------------------------------------------------------------- refused before any training
BAD = {
    ("--hp", "finetun.lr=1"): "'finetun', which is not in the grid",
    ("--hp", "npo.nope=1", "--strategies", "npo"): "strategy 'npo' has no hyperparameter nope",
    ("--hp", "npo.beta=1", "--strategies", "npo.kl"): "npo.kl.NAME=VALUE",
    ("--hp", "kcenter.first=medoid"): "not in the grid",
    ("--strategies", "finetune,gradient_ascent,finetune"): "strategies repeat finetune",
    ("--selectors", "random,random", "--fractions", "0.5"): "selectors repeat random",
    ("--scenario", "class,class"): "scenarios repeat class",
    ("--fractions", "0.5,0.5", "--selectors", "random"): "fractions repeat 0.5",
    ("--seeds", "0"): "at least 1", ("--seeds", "-1"): "at least 1", ("--seeds", "0,0"): "seeds repeat 0",
    ("--seeds", "1,-2"): "non-negative", ("--seeds", ""): "--seeds takes N",
    ("--fractions", "0.2"): "need a selector other than full", ("--fractions", "1.5", "--selectors", "random"): "in (0, 1]",
    ("--budget", "epochs"): "invalid choice",
}


@pytest.mark.parametrize("extra", list(BAD), ids=[" ".join(k) for k in BAD])
def test_refused_before_training(extra, no_training):
    code, _, err = cli("bench", "digits", "--strategies", "finetune", "--seeds", "1", "--no-progress", *extra)
    assert code == 2, err
    assert BAD[extra] in err, err


def test_tune_subcommand_delegates(monkeypatch):
    pytest.importorskip("erasus.tune")
    assert cli("tune", "--help")[0] == 0
    monkeypatch.setitem(sys.modules, "erasus.tune", None)  # as if the module were not there
    code, _, err = cli("tune", "digits")
    assert code == 2 and "erasus tune is unavailable" in err
    assert cli("list", "benchmarks")[0] == 0  # and the rest of the command still works
