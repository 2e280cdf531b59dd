"""``perf ftrace`` against the mount (perf honours TRACEFS_PATH): function and
function_graph records of the traced command, and ``perf ftrace latency``.

The command reads a file of the mount, so its vfs_read calls run in the simulated
kernel as that process (perf traces only its own child through set_ftrace_pid).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.mount

ROOT = Path(__file__).resolve().parents[1]


def _perf_ftrace(mnt: Path, *args: str) -> subprocess.CompletedProcess:
    if shutil.which("perf") is None:
        subprocess.run(["bash", str(ROOT / "scripts/setup-tools"), "linux-perf"],
                       capture_output=True, timeout=600)
        if shutil.which("perf") is None:
            pytest.skip("perf (linux-perf) cannot be installed")
    env = {**os.environ, "TRACEFS_PATH": str(mnt)}
    return subprocess.run(["timeout", "-k", "2", "60", "perf", "ftrace", *args, "--",
                           "cat", str(mnt / "README")], env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("seed", [1, None])
def test_perf_ftrace_function_records_the_child(mount_server, seed):
    mnt = mount_server(seed=seed).path
    r = _perf_ftrace(mnt, "-T", "vfs_read")
    assert r.returncode == 0, r.stderr
    recs = [ln for ln in r.stdout.splitlines() if re.search(r" vfs_read <-\w+", ln)]
    assert recs, r.stdout[-2000:]
    assert all(ln.split()[0].startswith("cat-") for ln in recs), recs
    # perf put everything back
    assert (mnt / "current_tracer").read_text() == "nop\n"
    assert (mnt / "set_ftrace_pid").read_text() == "no pid\n"


def test_perf_ftrace_function_graph_nests(mount_server):
    mnt = mount_server().path
    r = _perf_ftrace(mnt, "-G", "vfs_read")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert re.search(r"\|  vfs_read\(\) \{\n.*\|    \w+\(\);\n", out), out[-2000:]
    assert re.search(r"\d+\.\d+ us +\|  \}", out), out[-2000:]


def test_perf_ftrace_latency_histogram(mount_server):
    mnt = mount_server().path
    r = _perf_ftrace(mnt, "latency", "-T", "vfs_read")
    assert r.returncode == 0, r.stderr
    rows = re.findall(r"^\s+\d+ - +\S+ +[mu]?s \|\s+(\d+) \|", r.stdout, re.M)
    assert rows and sum(map(int, rows)) >= 2, r.stdout[-2000:]
