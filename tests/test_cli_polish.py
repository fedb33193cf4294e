"""The `erasus` command as a user's shell runs it: --version, a closed pipe, tables that fit 120 columns."""
import contextlib
import io
import os
import subprocess
import sys

import erasus
from erasus.cli import WIDTH, list_table, main

ERASUS = [sys.executable, "-c", "from erasus.cli import command; command()"]  # the console script


def erasus_cmd(*argv, **kw) -> subprocess.CompletedProcess:
    "Run `erasus ARGV` in a fresh process; text stdout and stderr."
    return subprocess.run([*ERASUS, *argv], capture_output=True, text=True, encoding="utf-8", timeout=600, **kw)


def in_process(*argv):
    "`main(argv)` here, for the cases a fresh process adds nothing to: exit code and stdout."
    out = io.StringIO()
    with contextlib.redirect_stdout(out): code = main(list(argv))
    return code, out.getvalue()


def widest(text: str) -> int: return max(len(line) for line in text.splitlines())


def test_version():
    res = erasus_cmd("--version")
    assert (res.returncode, res.stdout.strip()) == (0, f"erasus {erasus.__version__}")


def test_head_closes_the_pipe_quietly():
    "`erasus list strategies | head -2` in a shell: two lines, exit 0, no traceback."
    cmd = " ".join(f"'{a}'" for a in ERASUS) + " list strategies --wide | head -2"
    res = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, encoding="utf-8", timeout=600)
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.splitlines()) == 2 and res.stdout.startswith("name")
    assert "Traceback" not in res.stderr and "Broken pipe" not in res.stderr, res.stderr


def test_closed_pipe_from_the_start():
    "A reader that is gone before the first write (the case `head` only hits sometimes): still exit 0, quiet."
    r, w = os.pipe()
    os.close(r)
    try: res = subprocess.run([*ERASUS, "list", "strategies"], stdout=w, stderr=subprocess.PIPE, text=True, timeout=600)
    finally: os.close(w)
    assert res.returncode == 0, res.stderr
    assert res.stderr == "", res.stderr


def test_list_rows_fit():
    "The widest registry in a fresh process, the others (and --wide) in this one."
    res = erasus_cmd("list", "strategies")
    assert res.returncode == 0, res.stderr
    assert widest(res.stdout) <= WIDTH and "…" in res.stdout, res.stdout
    for kind in ("selectors", "metrics", "benchmarks"):
        code, out = in_process("list", kind)
        assert code == 0 and widest(out) <= WIDTH, out
    code, out = in_process("list", "strategies", "--wide")
    assert code == 0 and widest(out) > WIDTH
    for s in list_table("strategies")["summary"]: assert s in out


def test_bench_table_fits():
    res = erasus_cmd("bench", "digits", "--strategies", "negative_gradient,gradient_ascent", "--seeds", "1", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert widest(res.stdout) <= WIDTH, res.stdout
    head = res.stdout.splitlines()[0].split()
    assert head[:6] == ["scenario", "strategy", "selector", "fraction", "seeds", "avg_gap"], head
    assert {"forget_acc", "retain_acc", "test_acc", "mia_svc", "steps", "seconds"} <= set(head) and "speedup" not in head
    assert "--wide" in res.stderr


def test_bench_profile_names_every_piece(tmp_path):
    "`--profile` in a fresh process: every piece of the run, seconds and shares that add up to 100% of the wall time."
    res = erasus_cmd("bench", "digits", "--strategies", "gradient_ascent", "--selectors", "random", "--fractions", "0.5",
                     "--seeds", "1", "--no-progress", "--out", str(tmp_path / "r.json"), "--profile")
    assert res.returncode == 0, res.stderr
    assert "where the time went" in res.stderr and "where the time went" not in res.stdout, res.stderr
    lines = res.stderr.split("where the time went")[1].splitlines()[2:]
    prof = {line.split()[0]: line.split() for line in lines if line.strip()}
    assert {"start-up", "models", "selection", "unlearning", "evaluation", "writing", "other", "total"} <= set(prof), res.stderr
    shares = [float(v[2].rstrip("%")) for p, v in prof.items() if p != "total"]
    assert abs(sum(shares) - 100) < 0.5 and all(s >= 0 for s in shares), res.stderr
    seconds = {p: float(v[1]) for p, v in prof.items()}
    assert seconds["start-up"] > 0.1 and abs(sum(s for p, s in seconds.items() if p != "total") - seconds["total"]) < 0.05
