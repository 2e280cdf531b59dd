"""Host syscalls of a command started under ``tracefs_sim.syscall_mirror`` pass the
simulated kernel: ``echo > /dev/null`` hits do_sys_openat2, ``ln -s`` hits vfs_symlink
(ftracetest's kprobe_args_user.tc), and an open of the mount is seen once, not twice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tracefs_sim import syscall_mirror as sm

ROOT = Path(__file__).resolve().parents[1]


def run_bpf(prog: bytes, arch: int, nr: int) -> int:
    """A classic-BPF interpreter for the few instructions filter_program() uses."""
    insns = [sm.SOCK_FILTER.unpack_from(prog, i) for i in range(0, len(prog), sm.SOCK_FILTER.size)]
    data = {0: nr, 4: arch}
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == sm.BPF_LD_W_ABS:
            acc = data[k]
        elif code == sm.BPF_JEQ_K:
            pc += jt if acc == k else jf
        elif code == sm.BPF_RET_K:
            return k
        else:
            raise AssertionError(f"unexpected insn {code:#x}")
        pc += 1


def test_filter_notifies_only_the_listed_x86_64_syscalls() -> None:
    prog = sm.filter_program(sorted(sm.SYSCALLS))
    for nr in sm.SYSCALLS:
        assert run_bpf(prog, sm.AUDIT_ARCH_X86_64, nr) == sm.SECCOMP_RET_USER_NOTIF
    for nr in (0, 1, 3, 59, 256, 258, 265, 267, 437):
        assert run_bpf(prog, sm.AUDIT_ARCH_X86_64, nr) == sm.SECCOMP_RET_ALLOW
    # the same numbers under another ABI (i386: 5 is open) are not ours
    assert run_bpf(prog, 0x40000003, 257) == sm.SECCOMP_RET_ALLOW


def test_launcher_without_a_server_runs_the_command_unfiltered(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "tracefs_sim.syscall_mirror", str(tmp_path / "none"),
                        "--", "sh", "-c", "echo hi > /dev/null && echo ok"],
                       capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert r.returncode == 0 and r.stdout == "ok\n"
    assert "running unfiltered" in r.stderr


SCRIPT = r"""
set -e
echo 'p:myevent do_sys_open path=+0($arg2):ustring path2=+u0($arg2):string' > kprobe_events
echo 'p:myevent2 do_sys_openat2 path=+0($arg2):ustring path2=+u0($arg2):string' >> kprobe_events
echo 1 > events/kprobes/myevent/enable
echo 1 > events/kprobes/myevent2/enable
echo > /dev/null
cat trace_marker_raw 2>/dev/null || true
echo 0 > events/kprobes/myevent/enable
echo 0 > events/kprobes/myevent2/enable
grep myevent trace > $OUT/open.txt
echo > trace
echo 'p:myevent vfs_symlink path=+0($arg3):ustring path2=+u0($arg3):string' > kprobe_events
echo 1 > events/kprobes/myevent/enable
ln -s foo $OUT/bar
echo 0 > events/kprobes/myevent/enable
grep myevent trace > $OUT/symlink.txt
"""


@pytest.mark.mount
def test_host_opens_and_symlinks_reach_the_simulated_kernel(mount_server, tmp_path: Path) -> None:
    if not os.path.exists("/proc/self/mem") or os.uname().machine != "x86_64":
        pytest.skip("seccomp mirroring is x86-64 only")
    sock = tmp_path / "sc.sock"
    srv = mount_server(extra=("--syscall-socket", str(sock)))
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OUT": str(out), "PYTHONPATH": str(ROOT)}
    r = subprocess.run(["timeout", "-k", "1", "60", sys.executable, "-m", "tracefs_sim.syscall_mirror",
                        str(sock), "--", "sh", "-c", SCRIPT], cwd=srv.path, env=env,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if "running unfiltered" in r.stderr:
        pytest.skip("no seccomp user notification on this host")
    assert r.returncode == 0, r.stderr
    opened = (out / "open.txt").read_text()
    assert 'path="/dev/null" path2="/dev/null"' in opened
    # the open of trace_marker_raw (a file of the mount) is one do_sys_openat2 hit,
    # run by its FUSE request with the caller's pathname, not a second one from the filter
    marker = [ln for ln in opened.splitlines() if "myevent2:" in ln and "trace_marker_raw" in ln]
    assert len(marker) == 1, opened
    # vfs_symlink's third argument is a dentry: kernel memory, which user fetches fault
    assert "path=(fault) path2=(fault)" in (out / "symlink.txt").read_text()
    assert os.readlink(out / "bar") == "foo"    # and the host syscall itself ran
