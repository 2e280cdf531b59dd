"""Modules into a live mount: ``tracefs-sim insmod/rmmod/lsmod/dmesg MOUNTPOINT``."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tracefs_sim import modctl
from tracefs_sim.mountctl import PACKAGE_ROOT, server_python

from conftest import sh  # isort: skip

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

RAISING = '''
from tracefs_sim.kernel.fprobe import Fprobe

state = {}


def broken_handler(fp, ip, ret_ip, regs, data):
    raise RuntimeError("handler bug")


def init_module(kernel):
    fp = state["fp"] = Fprobe(broken_handler)
    return kernel.fprobe.register_fprobe(fp, "vfs_read", None)


def cleanup_module(kernel):
    kernel.fprobe.unregister_fprobe(state["fp"])
    kernel.printk(f"raising: {state['fp'].nmissed} times missed")
'''


def tsim(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PACKAGE_ROOT)
    return subprocess.run([server_python(), "-m", "tracefs_sim", *args], capture_output=True,
                          text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)


def test_insmod_lsmod_dmesg_rmmod(mount_server) -> None:
    mnt = str(mount_server().path)
    r = tsim("insmod", mnt, str(EXAMPLES / "kprobe_example.py"), "symbol=vfs_read")
    assert r.returncode == 0, r.stderr
    r = tsim("lsmod", mnt)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0] == "Module                  Size  Used by"
    assert lines[1] == "kprobe_example         12288  0"
    assert sh(mnt, "cat README > /dev/null").returncode == 0
    assert sh(mnt, "cat enabled_functions").stdout.startswith("vfs_read (1) R ")
    dmesg = tsim("dmesg", mnt).stdout
    assert re.search(r"^\[ *\d+\.\d{6}\] kprobe_init: Planted kprobe at [0-9a-f]{16}$", dmesg, re.M)
    assert re.search(r"^\[ *\d+\.\d{6}\] handler_pre: <vfs_read> p->addr = 0x", dmesg, re.M)
    r = tsim("insmod", mnt, str(EXAMPLES / "kprobe_example.py"))
    assert r.returncode == 1
    assert "insmod: ERROR: could not insert module" in r.stderr and "File exists" in r.stderr
    assert tsim("rmmod", mnt, "kprobe_example").returncode == 0
    assert "kprobe_exit: kprobe at" in tsim("dmesg", mnt).stdout
    r = tsim("rmmod", mnt, "kprobe_example")
    assert r.returncode == 1
    assert "rmmod: ERROR: Module kprobe_example is not currently loaded" in r.stderr
    assert "kprobe_example" not in tsim("lsmod", mnt).stdout


def test_a_failing_init_returns_its_errno_and_message(mount_server, tmp_path: Path) -> None:
    mnt = str(mount_server().path)
    r = tsim("insmod", mnt, str(EXAMPLES / "kprobe_example.py"), "symbol=no_such_function")
    assert r.returncode == 1
    assert "could not insert module" in r.stderr and "Unknown symbol in module" in r.stderr
    assert "init_module returned -2" in r.stderr
    assert "register_kprobe failed, returned -2" in tsim("dmesg", mnt).stdout
    r = tsim("insmod", mnt, str(EXAMPLES / "ftrace_ops.py"), "nr_function_calls=10")
    assert r.returncode == 1 and "Invalid parameters" in r.stderr     # by design
    r = tsim("insmod", mnt, str(EXAMPLES / "kprobe_example.py"), "nosuch=1")
    assert r.returncode == 1
    assert "kprobe_example: Unknown parameter `nosuch'" in tsim("dmesg", mnt).stdout


def test_a_raising_handler_is_logged_and_the_mount_stays_up(mount_server, tmp_path: Path) -> None:
    server = mount_server(allow_traceback=True)
    mnt = str(server.path)
    mod = tmp_path / "raising.py"
    mod.write_text(RAISING)
    assert tsim("insmod", mnt, str(mod)).returncode == 0
    for _ in range(2):
        assert sh(mnt, "cat README > /dev/null").returncode == 0
    dmesg = tsim("dmesg", mnt).stdout
    assert re.search(r"WARNING: CPU: \d+ PID: \d+ at broken_handler \[raising\]: "
                     r"RuntimeError: handler bug", dmesg)
    assert "Traceback (most recent call last):" in dmesg
    assert tsim("rmmod", mnt, "raising").returncode == 0
    m = re.search(r"raising: (\d+) times missed", tsim("dmesg", mnt).stdout)
    assert m and int(m[1]) >= 2
    assert sh(mnt, "cat tracing_on").stdout == "1\n"


def test_the_channel_refuses_other_users(mount_server) -> None:
    """The socket is the mount's own: the server checks SO_PEERCRED (only its user and
    root), so a connection from another uid is dropped without a reply."""
    if os.geteuid() != 0:
        pytest.skip("needs root to connect as another user")
    mnt = str(mount_server().path)
    code = ("import socket,os,sys\nos.setuid(65534)\ns=socket.socket(socket.AF_UNIX)\n"
            f"s.connect({modctl.address(mnt)!r})\n"
            "try:\n s.sendall(b'{\"op\":\"dmesg\"}');s.shutdown(socket.SHUT_WR);r=s.recv(100)\n"
            "except OSError:\n r=b''\nsys.stdout.write(repr(r))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert r.stdout == "b''", r.stderr
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(modctl.address(mnt))
        assert modctl.peer_uid(s)[1] == os.geteuid()


def test_each_mount_namespace_has_its_own_channel() -> None:
    """Every ``tracefs-sim run`` mounts at /sys/kernel/tracing in a mount namespace of
    its own, beside the host's network namespace (where abstract socket names live):
    the channel's name must differ between namespaces, or one run's ``insmod`` would
    load into another run's kernel."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare for a second mount namespace")
    code = ("from tracefs_sim import modctl; "
            "print(modctl.address('/sys/kernel/tracing').hex())")
    here = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, cwd=PACKAGE_ROOT)
    other = subprocess.run(["unshare", "--mount", sys.executable, "-c", code],
                           capture_output=True, text=True, timeout=30, cwd=PACKAGE_ROOT)
    assert here.returncode == other.returncode == 0, here.stderr + other.stderr
    assert here.stdout == modctl.address("/sys/kernel/tracing").hex() + "\n"
    assert other.stdout.strip() and other.stdout != here.stdout
