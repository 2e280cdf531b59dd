"""The stack tracer (trace_stack.py), the sysctl mirror, and the exec/loader paths the
function tracer sees (workload: a new process's dynamic loader, unwound stacks)."""

from __future__ import annotations

import re

import pytest

from tracefs_sim.kernel import Kernel
from tracefs_sim.kernel.errors import KernelError
from tracefs_sim.kernel.trace_stack import SYSCTL
from tracefs_sim.sysctl_mirror import SysctlMirror
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import read_file, write_file

LINE = re.compile(r"^ {0,2}(\d+)\) +(\d+) +(\d+)   (\S+)$")


@pytest.fixture
def k() -> Kernel:
    return Kernel(nr_cpus=2, seed=1)


def cat(k: Kernel, pid: int, op: str = "read") -> None:
    k.syscall_enter(pid, "cat", 1, op=op, name="README", count=100)
    k.syscall_exit()


def entries(text: str) -> list[tuple[int, int, int, str]]:
    out = []
    for line in text.splitlines()[2:]:
        m = LINE.match(line)
        assert m, line
        out.append((int(m[1]), int(m[2]), int(m[3]), m[4]))
    return out


def test_disabled_banner_and_files(k: Kernel) -> None:
    root = build_tree(k)
    assert read_file(root, "stack_trace").decode() == (
        "        Depth    Size   Location    (0 entries)\n"
        "        -----    ----   --------\n"
        "#\n#  Stack tracer disabled\n#\n"
        "# To enable the stack tracer, either add 'stacktrace' to the\n"
        "# kernel command line\n"
        "# or 'echo 1 > /proc/sys/kernel/stack_tracer_enabled'\n#\n")
    assert read_file(root, "stack_max_size") == b"0\n"
    assert read_file(root, "stack_trace_filter") == b"#### all functions enabled ####\n"
    read, write = k.sysctls[SYSCTL]
    assert read() == "0\n"
    with pytest.raises(KernelError):
        write("yes\n")


def test_max_stack_of_a_syscall(k: Kernel) -> None:
    root = build_tree(k)
    k.sysctls[SYSCTL][1]("1\n")
    assert "stack_trace_call" in read_file(root, "enabled_functions").decode()
    for pid in range(300, 310):
        cat(k, pid)
    text = read_file(root, "stack_trace").decode()
    ents = entries(text)
    assert text.startswith(f"        Depth    Size   Location    ({len(ents)} entries)\n")
    assert [e[0] for e in ents] == list(range(len(ents)))
    # depth = this frame's size + the depth below it; the bottom is the entry code
    for (_, d, s, _), nxt in zip(ents, [*ents[1:], None], strict=True):
        assert s == d - (nxt[1] if nxt else 0)
    assert ents[-1][3].startswith("entry_SYSCALL_64_after_hwframe+")
    assert ents[-2][3].startswith("do_syscall_64+")
    assert int(read_file(root, "stack_max_size")) == ents[0][1]
    k.sysctls[SYSCTL][1]("0\n")
    assert read_file(root, "enabled_functions") == b""
    assert "Stack tracer disabled" not in read_file(root, "stack_trace").decode()  # max kept


def test_filter_and_reset_of_the_maximum(k: Kernel) -> None:
    root = build_tree(k)
    assert write_file(root, "stack_trace_filter", b"*lock*") > 0
    lines = read_file(root, "stack_trace_filter").decode().splitlines()
    assert lines and all("lock" in x for x in lines)
    k.sysctls[SYSCTL][1]("1\n")
    write_file(root, "stack_max_size", b"0")
    for pid in range(300, 310):
        cat(k, pid)
    ents = entries(read_file(root, "stack_trace").decode())
    assert ents and "lock" in ents[0][3].split("+")[0]  # the traced function is entry 0
    assert ents[0][2] == 8                              # at __fentry__: only its return address
    write_file(root, "stack_max_size", b"0")
    assert read_file(root, "stack_max_size") == b"0\n"


def test_sysctl_mirror_applies_file_writes(tmp_path, k: Kernel) -> None:
    (tmp_path / "kernel").mkdir()
    m = SysctlMirror(k, str(tmp_path))
    f = tmp_path / "kernel" / "stack_tracer_enabled"
    assert f.read_text() == "0\n"
    f.write_text("1\n")
    m.sync()
    assert k.stack_tracer.enabled == 1 and f.read_text() == "1\n"
    f.write_text("bogus\n")
    m.sync()  # rejected: the file shows the kernel's value again
    assert k.stack_tracer.enabled == 1 and f.read_text() == "1\n"
    f.write_text("0\n")
    m.sync()
    assert k.stack_tracer.enabled == 0
    m.close()
    assert not f.exists()


def test_sysctl_mirror_leaves_existing_files_alone(tmp_path, k: Kernel) -> None:
    (tmp_path / "kernel").mkdir()
    f = tmp_path / "kernel" / "stack_tracer_enabled"
    f.write_text("host\n")
    m = SysctlMirror(k, str(tmp_path))
    f.write_text("1\n")
    m.sync()
    assert k.stack_tracer.enabled == 0
    m.close()
    assert f.read_text() == "1\n"


def test_function_stack_trace_is_unwound_like_orc(k: Kernel) -> None:
    root = build_tree(k)
    write_file(root, "set_ftrace_filter", b"vfs_read")
    write_file(root, "current_tracer", b"function")
    write_file(root, "options/func_stack_trace", b"1")
    k.workload.hostprocs.seen.add(300)
    cat(k, 300)
    text = read_file(root, "trace").decode()
    stack = text.split("<stack trace>\n", 1)[1].splitlines()
    assert stack[:5] == [" => [FTRACE TRAMPOLINE]", " => vfs_read", " => ksys_read",
                         " => do_syscall_64", " => entry_SYSCALL_64_after_hwframe"]


def test_a_new_requester_of_a_seeded_mount_was_forked_and_loaded(k: Kernel) -> None:
    root = build_tree(k)
    k.workload.hostprocs.synth_host_start = True
    write_file(root, "set_ftrace_filter", b"vfs_read\nvfs_open\nkernel_clone")
    write_file(root, "current_tracer", b"function")
    cat(k, 4242)
    cat(k, 4242)  # known now: just the read
    lines = [x for x in read_file(root, "trace").decode().splitlines() if not x.startswith("#")]
    funcs = [(x.split()[0], x.split(":", 2)[-1].strip()) for x in lines]
    assert funcs[0] == ("sh-168", "kernel_clone <-__x64_sys_clone")  # the shell forks it
    assert ("cat-4242", "vfs_open <-path_openat") in funcs               # exec + ld.so opens
    assert ("cat-4242", "vfs_read <-__x64_sys_pread64") in funcs         # libc's headers
    assert funcs[-2:] == [("cat-4242", "vfs_read <-ksys_read")] * 2      # its own reads
    # in-process kernels (synth_host_start off) only run the request
    k2 = Kernel(nr_cpus=1, seed=1)
    r2 = build_tree(k2)
    write_file(r2, "set_ftrace_filter", b"vfs_read")
    write_file(r2, "current_tracer", b"function")
    cat(k2, 4242)
    assert len([x for x in read_file(r2, "trace").decode().splitlines() if not x.startswith("#")]) == 1
