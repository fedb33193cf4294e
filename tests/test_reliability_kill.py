"""Workers of `erasus bench --workers N` exit when their parent is killed (issue 8 item 8)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import shutil

import pytest


def _children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def _alive(pid):
    try: os.kill(pid, 0)
    except ProcessLookupError: return False
    st = Path(f"/proc/{pid}/stat")
    return not (st.exists() and st.read_text().split()[2] == "Z")


def _cmdline(pid: int) -> str:
    "A process's command line; empty if it has already exited (a short-lived child such as `git` can go between listing and reading)."
    try: return Path(f"/proc/{pid}/cmdline").read_text(errors="ignore")
    except OSError: return ""


@pytest.mark.skipif(sys.platform != "linux" or shutil.which("pgrep") is None, reason="uses /proc and pgrep")
def test_workers_exit_when_the_parent_is_killed(tmp_path):
    cmd = [sys.executable, "-c", "from erasus.cli import command; command()", "bench", "digits", "--strategies", "gradient_ascent,negative_gradient,scrub",
           "--seeds", "3", "--workers", "2", "--no-progress", "--out", str(tmp_path / "r.json")]
    parent = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    workers, t0 = [], time.time()
    while time.time() - t0 < 60 and len(workers) < 2:
        workers = [c for c in _children(parent.pid) if "spawn_main" in _cmdline(c)]
        time.sleep(0.3)
    if len(workers) < 2:
        parent.kill(); pytest.skip("the pool did not start within 60 s")
    parent.send_signal(signal.SIGKILL); parent.wait()
    t0 = time.time()
    while time.time() - t0 < 15 and any(_alive(w) for w in workers): time.sleep(0.3)
    left = [w for w in workers if _alive(w)]
    for w in left: os.kill(w, signal.SIGKILL)
    assert not left, f"workers {left} outlived their killed parent"
