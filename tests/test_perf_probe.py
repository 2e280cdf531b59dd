"""``perf probe -l`` / ``perf probe -d`` against the mount (perf honours TRACEFS_PATH).

perf parses kprobe_events / uprobe_events itself: the listing shows each event as
``GROUP:EVENT (on SYM[%return] [with ARGS])`` and ``-d`` writes ``-:GROUP/EVENT``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import sh

pytestmark = pytest.mark.mount

ROOT = Path(__file__).resolve().parents[1]


def _perf() -> None:
    if shutil.which("perf") is None:
        subprocess.run(["bash", str(ROOT / "scripts/setup-tools"), "linux-perf"],
                       capture_output=True, timeout=600)
        if shutil.which("perf") is None:
            pytest.skip("perf (linux-perf) cannot be installed")


def _perf_probe(mnt: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRACEFS_PATH": str(mnt)}
    return subprocess.run(["timeout", "-k", "1", "60", "perf", "probe", *args], env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)


def test_perf_probe_lists_and_deletes_kprobe_events(mount_server):
    _perf()
    mnt = mount_server().path
    r = sh(mnt, "echo 'p:myprobe vfs_read count=%dx' >> kprobe_events"
                " && echo 'r:myret vfs_write $retval' >> kprobe_events"
                " && echo 'p:grp/other do_sys_openat2' >> kprobe_events")
    assert r.returncode == 0, r.stderr
    r = _perf_probe(mnt, "-l")
    assert r.returncode == 0, r.stderr
    listed = sorted(line.split()[0] for line in r.stdout.splitlines())
    assert listed == ["grp:other", "kprobes:myprobe", "kprobes:myret"]
    lines = {line.split()[0]: line for line in r.stdout.splitlines()}
    assert "(on vfs_read with count)" in lines["kprobes:myprobe"]
    assert "(on vfs_write%return with arg1)" in lines["kprobes:myret"]
    r = _perf_probe(mnt, "-d", "myret")
    assert r.returncode == 0, r.stderr
    assert "Removed event: kprobes:myret" in r.stdout + r.stderr
    assert sh(mnt, "cat kprobe_events").stdout == (
        "p:kprobes/myprobe vfs_read count=%dx\np:grp/other do_sys_openat2\n")
    assert not (mnt / "events/kprobes/myret").exists()
    # a glob removes every match
    r = _perf_probe(mnt, "-d", "kprobes:*")
    assert r.returncode == 0, r.stderr
    assert sh(mnt, "cat kprobe_events").stdout == "p:grp/other do_sys_openat2\n"
