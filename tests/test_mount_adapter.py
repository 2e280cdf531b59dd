"""The FUSE adapter over a tiny test tree (tests/adapter_tree.py), through a real mount."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import sh

from tracefs_sim.mountctl import mount_points


def test_echo_cat_through_sh(adapter_mount):
    r = sh(adapter_mount.path, "echo hello > data && cat data")
    assert (r.returncode, r.stdout, r.stderr) == (0, "hello\n", "")


def test_trunc_and_append_reach_the_tree(adapter_mount):
    mnt = adapter_mount.path
    assert sh(mnt, "echo a > data; echo b >> data; cat data").stdout == "a\nb\n"
    assert sh(mnt, "echo c > data; cat data").stdout == "c\n"
    opens = sh(mnt, "cat opens").stdout.splitlines()
    assert opens[0] == "r=0 w=1 trunc=1 append=0 nonblock=0"
    assert opens[1] == "r=0 w=1 trunc=0 append=1 nonblock=0"
    assert opens[2] == "r=1 w=0 trunc=0 append=0 nonblock=0"
    # truncate(1) is open(O_WRONLY|O_CREAT) + ftruncate: setattr(size=0) -> File.truncate()
    r = sh(mnt, "truncate -s 0 data && wc -c < data")
    assert (r.returncode, r.stdout.strip()) == (0, "0")


def test_modes_nlink_and_dot_entries(adapter_mount):
    mnt = adapter_mount.path
    r = sh(mnt, "stat -c '%A %h %s %u' data ro instances")
    assert r.stdout.splitlines() == [f"-rw-r----- 1 0 {os.getuid()}", f"-r--r----- 1 0 {os.getuid()}",
                                     f"drwxr-x--- 2 0 {os.getuid()}"]
    names = sh(mnt, "ls -a").stdout.split()
    assert names[:2] == [".", ".."] and "pipe" in names


def test_errnos_of_the_namespace(adapter_mount):
    mnt = adapter_mount.path
    assert "Permission denied" in sh(mnt, "touch newfile").stderr  # create -> EACCES
    assert "Operation not permitted" in sh(mnt, "rm data").stderr  # unlink -> EPERM
    assert "Operation not permitted" in sh(mnt, "mkdir newdir").stderr  # Dir.mkdir default
    # default_permissions: the VFS checks modes; root may open a 0440 file for writing,
    # and then the write fails as a file without a write op does (EINVAL)
    err = sh(mnt, "bash -c 'echo x > ro'").stderr
    assert ("Invalid argument" if os.getuid() == 0 else "Permission denied") in err
    assert "No such file" in sh(mnt, "cat nothing").stderr


def test_mkdir_rmdir_map_through(adapter_mount):
    mnt = adapter_mount.path
    r = sh(mnt, "mkdir instances/foo && ls instances/foo && cat instances/foo/tracing_on"
                " && stat -c %h instances")
    assert (r.returncode, r.stdout) == (0, "tracing_on\n1\n3\n"), r.stderr
    assert "File exists" in sh(mnt, "mkdir instances/foo").stderr
    r = sh(mnt, "rmdir instances/foo && ls -A instances && stat -c %h instances")
    assert (r.returncode, r.stdout) == (0, "2\n"), r.stderr
    assert "No such file" in sh(mnt, "rmdir instances/foo").stderr


def test_caller_context_pid_comm_cpu(adapter_mount):
    mnt = adapter_mount.path
    assert sh(mnt, "taskset -c 1 cat whoami").stdout.split()[1:] == ["cat", "1", str(os.getuid())]
    assert sh(mnt, "taskset -c 0 cat whoami").stdout.split()[1:3] == ["cat", "0"]
    r = sh(mnt, "exec cat whoami & echo $!; wait")
    pid, line = r.stdout.splitlines()
    assert line.split()[0] == pid


def test_injected_exception_gives_eio_and_mount_survives(mount_server):
    server = mount_server(tree_factory="adapter_tree:build", allow_traceback=True)
    r = sh(server.path, "cat fail")
    assert r.returncode == 1 and "Input/output error" in r.stderr
    assert sh(server.path, "cat ro").stdout == "ro\n"
    assert "injected failure" in server.stderr()
    assert server.mounted() and server.proc.poll() is None


def test_blocked_cat_does_not_block_other_requests(adapter_mount):
    mnt = adapter_mount.path
    reader = subprocess.Popen(["timeout", "-k", "1", "10", "head", "-c", "3", "pipe"], cwd=mnt,
                              stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        assert reader.poll() is None  # blocked in read
        t0 = time.monotonic()
        assert sh(mnt, "cat ro; ls >/dev/null; echo z > data; cat data").stdout == "ro\nz\n"
        assert time.monotonic() - t0 < 1.0
        assert sh(mnt, "echo hi > pipe").returncode == 0
        out, _ = reader.communicate(timeout=5)
        assert (reader.returncode, out) == (0, "hi\n")
    finally:
        reader.kill()


def test_200_blocked_readers_do_not_stall_the_mount(adapter_mount):
    mnt = adapter_mount.path
    readers = [subprocess.Popen(["timeout", "-k", "1", "20", "head", "-c", "1", "pipe"], cwd=mnt,
                                stdout=subprocess.PIPE) for _ in range(200)]
    try:
        time.sleep(1.0)
        assert all(p.poll() is None for p in readers)
        t0 = time.monotonic()
        assert sh(mnt, "cat ro").stdout == "ro\n"
        assert time.monotonic() - t0 < 2.0
        assert sh(mnt, "printf '%0200d' 0 > pipe").returncode == 0
        outs = [p.communicate(timeout=15)[0] for p in readers]
        assert [p.returncode for p in readers] == [0] * 200
        assert b"".join(outs) == b"0" * 200
    finally:
        for p in readers:
            p.kill()


def test_sigint_ends_a_blocked_cat(adapter_mount):
    # SIGINT handled here, so cat starts with its default action even when the tests run
    # as a background job of a non-interactive shell (which ignores it)
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        cat = subprocess.Popen(["cat", "pipe"], cwd=adapter_mount.path, stdout=subprocess.PIPE)
    finally:
        signal.signal(signal.SIGINT, saved)
    try:
        time.sleep(0.3)
        assert cat.poll() is None
        t0 = time.monotonic()
        cat.send_signal(signal.SIGINT)
        cat.wait(timeout=3)
        assert time.monotonic() - t0 < 1.2
        assert cat.returncode == -signal.SIGINT
        # the data written afterwards was not eaten by the dead reader's request
        assert sh(adapter_mount.path, "echo after > pipe; head -c 6 pipe").stdout == "after\n"
    finally:
        cat.kill()


def _wait_blocked_in_fuse(wrappers: list[subprocess.Popen], timeout: float = 10.0) -> None:
    """Until the ``cat`` under each ``timeout`` wrapper sleeps in a FUSE request (a
    loaded machine may not have started them all after a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        blocked = 0
        for w in wrappers:
            try:
                kids = open(f"/proc/{w.pid}/task/{w.pid}/children").read().split()
                wchan = open(f"/proc/{kids[0]}/wchan").read() if kids else ""
            except OSError:
                continue
            blocked += "fuse" in wchan or "request_wait" in wchan
        if blocked == len(wrappers):
            return
        time.sleep(0.05)
    raise AssertionError("the readers did not block in the mount")


def test_sigterm_to_server_with_blocked_readers(mount_server):
    server = mount_server(tree_factory="adapter_tree:build")
    readers = [subprocess.Popen(["timeout", "-k", "1", "10", "cat", "pipe"], cwd=server.path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(5)]
    try:
        _wait_blocked_in_fuse(readers)
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=5) == 0
        assert time.monotonic() - t0 < 2.0
        assert str(server.path) not in mount_points()
        for p in readers:
            p.wait(timeout=5)
            assert p.returncode == 0  # blocked reads end with EOF at unmount (not timeout's 124)
    finally:
        for p in readers:
            p.kill()


POLL_SCRIPT = r"""
import os, select, subprocess, sys, time
fd = os.open("pipe", os.O_RDONLY | os.O_NONBLOCK)
try:
    os.read(fd, 10)
    sys.exit("read of an empty pipe opened O_NONBLOCK did not fail")
except BlockingIOError:
    pass
assert select.select([fd], [], [], 0)[0] == [], "readable while empty"
p = select.poll(); p.register(fd, select.POLLIN)
assert p.poll(0) == [], "poll: readable while empty"
subprocess.Popen(["sh", "-c", "sleep 0.3; echo x > pipe"])
t0 = time.monotonic()
r = select.select([fd], [], [], 5)[0]
dt = time.monotonic() - t0
assert r == [fd], "select did not wake"
assert 0.2 < dt < 2.0, dt
assert p.poll(0)[0][1] & select.POLLIN
print(os.read(fd, 10).decode(), end="")
"""


def test_poll_and_select_wake_up(adapter_mount):
    r = subprocess.run(["timeout", "-k", "1", "10", sys.executable, "-c", POLL_SCRIPT],
                       cwd=adapter_mount.path, capture_output=True, text=True)
    assert (r.returncode, r.stdout) == (0, "x\n"), r.stderr


def _fusectl() -> str | None:
    """The fuse control filesystem (mounted here when it is not yet), or None."""
    path = "/sys/fs/fuse/connections"
    if not os.path.isdir(path):
        return None
    if not os.listdir(path):
        subprocess.run(["mount", "-t", "fusectl", "none", path], capture_output=True)
    return path if os.listdir(path) or os.path.ismount(path) else None


def test_aborted_connection_ends_the_server_cleanly(mount_server):
    ctl = _fusectl()
    if ctl is None:
        pytest.skip("no fuse control filesystem to abort a connection through")
    server = mount_server(tree_factory="adapter_tree:build")
    reader = subprocess.Popen(["timeout", "-k", "1", "10", "cat", "pipe"], cwd=server.path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        conn = os.minor(os.stat(server.path).st_dev)
        with open(f"{ctl}/{conn}/abort", "w") as f:
            f.write("1")
        # the session ends with ECONNABORTED, not ENODEV: still a normal end
        assert server.proc.wait(timeout=5) == 0
        reader.wait(timeout=5)
    finally:
        reader.kill()
        subprocess.run(["fusermount3", "-u", "-z", str(server.path)], capture_output=True)
    assert "Traceback" not in server.stderr()
