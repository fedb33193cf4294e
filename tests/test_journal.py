"""Results written as an append-only journal, compacted at the end; reference metrics computed once per scenario."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

import erasus.metrics
from erasus import bench
from erasus.bench import (Journal, compact_journal, get_scenario, journal_path, load_results, merge_results,
                          reference_rows, row_key, run_bench, run_row, save_results)

SMALL = dict(benchmark="digits", scenarios=["class"], strategies=["gradient_ascent"], seeds=[0], progress=False)
TWO = {**SMALL, "strategies": ["gradient_ascent", "finetune"]}
TIMING = {"seconds", "select_seconds", "speedup"}  # what a rerun of the same row may change


def same(a: dict, b: dict) -> dict:
    "The fields of two rows that differ, timings aside."
    return {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if k not in TIMING and a.get(k) != b.get(k)}


# ---------------------------------------------------------------- reference metrics once per scenario
def test_oracle_and_base_evaluated_once(monkeypatch):
    real, calls = erasus.metrics.evaluate, []
    def counted(model, problem, metrics=erasus.metrics.DEFAULT_METRICS):
        calls.append(id(model))
        return real(model, problem, metrics)
    monkeypatch.setattr(erasus.metrics, "evaluate", counted)
    res = run_bench(**{**TWO, "strategies": ["gradient_ascent", "finetune", "random_label"]})
    assert len(res["rows"]) == 5
    # base and oracle once, then one per unlearned model (re-evaluating the references per row would make 2 + 3 + 3);
    # ids are not compared: a freed unlearned model's id may be reused by the next
    assert len(calls) == 2 + 3


def test_rows_are_those_of_a_fresh_scenario_per_row():
    "The grid reuses one scenario and its oracle metrics; every row equals the row made the old way, on a fresh scenario."
    grid = {**TWO, "selectors": ["full", "random"], "fractions": [1.0, 0.5]}
    rows = run_bench(**grid)["rows"]
    for r in rows:
        sc = get_scenario("digits", "class", 0)  # a new object: nothing memoised
        if r["strategy"] in ("base", "retrain"):
            old = next(x for x in reference_rows(sc) if x["strategy"] == r["strategy"])
        else:
            old = run_row(sc, r["strategy"], r["selector"], r["fraction"])
            assert sc.memo.keys() == {("oracle", tuple(erasus.metrics.DEFAULT_METRICS))}
        diff = same(old, {k: v for k, v in r.items() if k in old})
        assert not diff, (row_key(r), diff)


def test_reference_metrics_follow_the_model(class_sc):
    import dataclasses
    sc = dataclasses.replace(class_sc)
    assert sc.memo == {}  # a copy starts with its own memo
    a = sc.reference_metrics("oracle", ["forget_acc"])
    a["forget_acc"] = -1.0  # the caller's copy, not the memo
    assert sc.reference_metrics("oracle", ["forget_acc"])["forget_acc"] >= 0
    sc.oracle = sc.problem.model  # reassigned: measured anew
    assert sc.reference_metrics("oracle", ["retain_acc"]) == sc.reference_metrics("base", ["retain_acc"])
    with pytest.raises(ValueError, match="'base' or 'oracle'"):
        sc.reference_metrics("retrain", ["forget_acc"])


# ---------------------------------------------------------------- the journal
def test_the_results_file_is_written_once_per_run(tmp_path, monkeypatch):
    "Saving a row appends to the journal: the JSON is written once, at the end, whatever the number of rows."
    real, writes = bench.save_results, []
    monkeypatch.setattr(bench, "save_results", lambda *a, **k: writes.append(1) or real(*a, **k))
    out = tmp_path / "r.json"
    res = run_bench(**TWO, out=out)
    assert len(writes) == 1 and len(res["rows"]) == 4
    assert not journal_path(out).exists() and load_results(out)["rows"] == res["rows"]


KILLED = textwrap.dedent("""
    import os, sys
    from erasus import bench
    real, calls = bench.run_row, []
    def die_on_the_second(*a, **k):
        calls.append(1)
        if len(calls) == 2: os._exit(9)  # as SIGKILL: no finally, no compaction
        return real(*a, **k)
    bench.run_row = die_on_the_second
    bench.run_bench(benchmark="digits", scenarios=["class"], strategies=["gradient_ascent", "finetune"], seeds=[0],
                    progress=False, out=sys.argv[1])
""")


def test_killed_run_leaves_a_journal_that_the_resume_uses(tmp_path):
    out = tmp_path / "r.json"
    p = subprocess.run([sys.executable, "-c", KILLED, str(out)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 9, p.stderr
    # 1. killed after three rows: they are in the journal, the results file was never written
    assert not out.exists() and journal_path(out).exists()
    lines = [json.loads(x) for x in journal_path(out).read_text().splitlines()]
    assert list(lines[0]) == ["run"] and [x["row"]["strategy"] for x in lines[1:]] == ["base", "retrain", "gradient_ascent"]
    killed = {x["row"]["strategy"]: x["row"] for x in lines[1:]}
    # 2. the resume merges them in, reuses them (nothing is redone) and runs only the missing row
    res = run_bench(**TWO, out=out)
    by = {r["strategy"]: r for r in res["rows"]}
    assert sorted(by) == ["base", "finetune", "gradient_ascent", "retrain"]
    for s, r in killed.items(): assert by[s] == r  # seconds and run id included
    runs = res["provenance"]["runs"]
    assert len(runs) == 2 and runs[0]["id"] == killed["base"]["run"] and runs[1]["reused"] == 3 and runs[1]["rows"] == 1
    assert by["finetune"]["run"] == runs[1]["id"] and not journal_path(out).exists()


def test_a_cut_off_last_line_is_skipped_with_a_warning(tmp_path):
    out = tmp_path / "r.json"
    done = run_bench(**SMALL, out=out)
    out.unlink()
    # a journal as a killed run leaves it: its entry, its rows, and half a line
    j = Journal(out, done["provenance"]["runs"][0])
    j.append(done["rows"]); j.close()
    with open(journal_path(out), "a") as f: f.write(json.dumps(dict(row=done["rows"][0]))[:40])
    with pytest.warns(UserWarning, match="cut off"):
        res = run_bench(**SMALL, out=out)
    assert res["rows"] == done["rows"]  # every finished row reused, nothing redone
    assert res["provenance"]["runs"][-1]["reused"] == 3 and not journal_path(out).exists()


def test_a_journal_row_made_with_other_settings_is_rerun(tmp_path):
    "Rows in a journal are merged, then judged by config_hash like any other row on disk."
    out = tmp_path / "r.json"
    done = run_bench(**SMALL, out=out)
    out.unlink()
    stale = [dict(r, config_hash="other") if r["strategy"] == "gradient_ascent" else r for r in done["rows"]]
    j = Journal(out, done["provenance"]["runs"][0]); j.append(stale); j.close()
    res = run_bench(**SMALL, out=out)
    by = {r["strategy"]: r for r in res["rows"]}
    assert by["gradient_ascent"]["config_hash"] != "other" and by["gradient_ascent"]["run"] == res["provenance"]["run"]
    assert by["base"] == next(r for r in done["rows"] if r["strategy"] == "base")


def test_the_results_file_is_what_a_full_rewrite_writes(tmp_path):
    "The compacted file, byte for byte, is what merging every row into the file and writing it whole gives."
    out, ref = tmp_path / "r.json", tmp_path / "ref.json"
    run_bench(**SMALL, out=out)
    before = load_results(out)
    res = run_bench(**{**TWO, "seeds": [0, 1]}, out=out)
    run = res["provenance"]["runs"][-1]
    mine = [r for r in res["rows"] if r["run"] == run["id"]]
    save_results(ref, merge_results(before, mine, run))
    assert out.read_bytes() == ref.read_bytes()
    assert len(mine) == 5  # finetune at seed 0; base, retrain, both strategies at seed 1


def test_compact_journal_keeps_rows_whose_run_entry_was_lost(tmp_path):
    out = tmp_path / "r.json"
    row = dict(benchmark="b", scenario="s", seed=0, strategy="x", selector="full", fraction=1.0, run="gone")
    journal_path(out).write_text(json.dumps(dict(row=row)) + "\n")
    assert compact_journal(out) and load_results(out)["rows"] == [row]
    assert not journal_path(out).exists()


def test_journal_of_a_private_file_is_private(tmp_path):
    out = tmp_path / "r.json"
    save_results(out, dict(provenance={}, rows=[])); os.chmod(out, 0o600)
    j = Journal(out, dict(id="r"))
    j.append([dict(benchmark="b", scenario="s", seed=0, strategy="x", selector="full", fraction=1.0)]); j.close()
    assert (journal_path(out).stat().st_mode & 0o777) == 0o600
