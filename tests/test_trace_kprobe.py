"""kprobe and uprobe events (trace_kprobe.py, trace_uprobe.py, tracefs/probe_files.py).

Error cases are every ``check_error`` of tools/testing/selftests/ftrace/test.d/kprobe/
kprobe_syntax_errors.tc and uprobe_syntax_errors.tc (6.12): the command without '^' fails,
the error_log entry has the caret where the '^' was, and the text is the one the 6.12
code path logs (trace_kprobe.c / trace_uprobe.c / trace_probe.c).  Show texts, the
``r10:`` maxactive and the BTF names follow golden 12-dynamic_events.txt; the
enabled_functions line of a kprobe follows golden 11-enabled_functions.txt.
"""

from __future__ import annotations

import errno

import pytest

from tracefs_sim.kernel import Kernel
from tracefs_sim.kernel.kprobes import insn_boundary
from tracefs_sim.kernel.ptrace import regs_query_register_offset
from tracefs_sim.kernel.trace_probe import ProbeErr
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import read_file, write_errno

E = ProbeErr
EINVAL, ENOENT, EEXIST = errno.EINVAL, errno.ENOENT, errno.EEXIST


class Env:
    """A booted kernel with the tracefs tree; writes like ``echo CMD >> FILE``."""

    def __init__(self) -> None:
        k = Kernel(nr_cpus=2, seed=1)
        if getattr(k, "uprobe_events", None) is None:
            from tracefs_sim.kernel import trace_uprobe

            k.uprobe_events = trace_uprobe.boot(k)   # type: ignore[attr-defined]
        self.k = k
        self.root = build_tree(k)
        self.tr = k.trace.global_trace

    def write(self, path: str, text: str, append: bool = True) -> int:
        """0 or the errno of the write (or of the O_TRUNC open)."""
        return write_errno(self.root, path, text, append)

    def read(self, path: str) -> str:
        return read_file(self.root, path).decode()

    def clear_log(self) -> None:
        self.tr.err_log.clear()


@pytest.fixture(scope="module")
def env() -> Env:
    return Env()


def check_error(env: Env, loc: str, file: str, cmd_with_caret: str, err: int,
                text: ProbeErr) -> None:
    """ftrace_errlog_check: position of '^' = caret column, 13 + pos bytes last line."""
    pos = cmd_with_caret.rfind("^")
    cmd = cmd_with_caret.replace("^", "")
    env.clear_log()
    assert env.write(file, cmd) == err, cmd
    log = env.tr.err_log
    assert len(log) == 1, [(e.text, e.cmd) for e in log]
    e = log[-1]
    assert e.loc == f"{loc}: error: "
    assert e.cmd == cmd
    assert e.text == text.value, (cmd, e.text)
    assert e.pos == pos, (cmd, e.pos, pos)
    last = env.read("error_log").splitlines()[-1] + "\n"
    assert len(last) == 13 + pos


LONG = "12345678901234567890123456789012345678901234567890123456789012345"
KPROBE_CASES = [
    ("p^100 vfs_read", EINVAL, E.BAD_MAXACT_TYPE),
    ("r^1a111 vfs_read", EINVAL, E.BAD_MAXACT),
    ("r^100000 vfs_read", EINVAL, E.MAXACT_TOO_BIG),
    ("p ^non_exist_func", EINVAL, E.BAD_PROBE_ADDR),
    ("p ^hoge-fuga", EINVAL, E.BAD_PROBE_ADDR),
    ("p ^hoge+1000-1000", EINVAL, E.BAD_PROBE_ADDR),
    ("r ^vfs_read+10", EINVAL, E.BAD_RETPROBE),
    ("p:^/bar vfs_read", EINVAL, E.NO_GROUP_NAME),
    (f"p:^{LONG}/bar vfs_read", EINVAL, E.GROUP_TOO_LONG),
    ("p:^foo.1/bar vfs_read", EINVAL, E.BAD_GROUP_NAME),
    ("p:^ vfs_read", EINVAL, E.NO_EVENT_NAME),
    (f"p:foo/^{LONG} vfs_read", EINVAL, E.EVENT_TOO_LONG),
    ("p:foo/^bar.1 vfs_read", EINVAL, E.BAD_EVENT_NAME),
    ("p vfs_read ^$retval", EINVAL, E.RETVAL_ON_PROBE),
    ("p vfs_read ^$stack10000", EINVAL, E.BAD_STACK_NUM),
    ("p vfs_read ^$arg10000", ENOENT, E.NO_BTFARG),
    ("p vfs_read ^$none_var", EINVAL, E.BAD_VAR),
    ("p vfs_read ^%none_reg", EINVAL, E.BAD_REG_NAME),
    ("p vfs_read ^@12345678abcde", EINVAL, E.BAD_MEM_ADDR),
    ("p vfs_read ^@+10", EINVAL, E.FILE_ON_KPROBE),
    ("p vfs_read arg1=\\^x", EINVAL, E.BAD_IMM),
    ('p vfs_read arg1=\\"abcd^', EINVAL, E.IMMSTR_NO_CLOSE),
    ("p vfs_read ^+0@0)", EINVAL, E.DEREF_NEED_BRACE),
    ("p vfs_read ^+0ab1(@0)", EINVAL, E.BAD_DEREF_OFFS),
    ("p vfs_read +0(+0(@0^)", EINVAL, E.DEREF_OPEN_BRACE),
    ("p vfs_read +0(^$comm)", EINVAL, E.COMM_CANT_DEREF),
    ("p vfs_read ^&1", EINVAL, E.BAD_FETCH_ARG),
    ("p vfs_read +0(^+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(@0))))))))))))))", EINVAL,
     E.TOO_MANY_OPS),
    ("p vfs_read +0(@11):u8[10^", EINVAL, E.ARRAY_NO_CLOSE),
    ("p vfs_read +0(@11):u8[10]^a", EINVAL, E.BAD_ARRAY_SUFFIX),
    ("p vfs_read +0(@11):u8[^10a]", EINVAL, E.BAD_ARRAY_NUM),
    ("p vfs_read +0(@11):u8[^256]", EINVAL, E.ARRAY_TOO_BIG),
    ("p vfs_read @11:^unknown_type", EINVAL, E.BAD_TYPE),
    ("p vfs_read $stack0:^string", EINVAL, E.BAD_STRING),
    ("p vfs_read @11:^b10@a/16", EINVAL, E.BAD_BITFIELD),
    ("p vfs_read ^arg123456789012345678901234567890=@11", EINVAL, E.ARG_NAME_TOO_LONG),
    ("p vfs_read ^=@11", EINVAL, E.NO_ARG_NAME),
    ("p vfs_read ^var.1=@11", EINVAL, E.BAD_ARG_NAME),
    ("p vfs_read var1=@11 ^var1=@12", EINVAL, E.USED_ARG_NAME),
    ("p vfs_read ^+1234567(+1234567(+1234567(+1234567(+1234567(+1234567(@1234))))))",
     errno.E2BIG, E.ARG_TOO_LONG),
    ("p vfs_read arg1=^", EINVAL, E.NO_ARG_BODY),
    ("p vfs_read^%hoge", EINVAL, E.BAD_ADDR_SUFFIX),
    ("p ^vfs_read+10%return", EINVAL, E.BAD_RETPROBE),
    # BTF arguments (6.12 logs BAD_VAR where the .tc comment says BAD_VAR_ARGS)
    ("p vfs_read args=^$arg*", EINVAL, E.BAD_VAR),
    ("p vfs_read +0(^$arg*)", EINVAL, E.BAD_VAR),
    ("p vfs_read $arg* ^$arg*", EINVAL, E.DOUBLE_ARGS),
    ("p vfs_read+20 ^$arg*", EINVAL, E.NOFENTRY_ARGS),
    ("p vfs_read ^hoge", ENOENT, E.NO_BTFARG),
    ("p kfree ^$arg10", ENOENT, E.NO_BTFARG),
    ("r kfree ^$retval", ENOENT, E.NO_RETVAL),
]


@pytest.mark.parametrize("cmd,err,text", KPROBE_CASES, ids=[c[0] for c in KPROBE_CASES])
def test_kprobe_syntax_errors(env: Env, cmd: str, err: int, text: ProbeErr) -> None:
    check_error(env, "trace_kprobe", "kprobe_events", cmd, err, text)
    assert env.read("kprobe_events") == ""


def test_kprobe_insn_boundary_and_multiprobe_errors(env: Env) -> None:
    assert env.write("kprobe_events", "p vfs_read", append=False) == 0
    check_error(env, "trace_kprobe", "kprobe_events", "p ^vfs_read+3", errno.EILSEQ,
                E.BAD_INSN_BNDRY)
    assert env.write("kprobe_events", "p:kprobes/testevent kernel_clone", append=False) == 0
    check_error(env, "trace_kprobe", "kprobe_events", "^r:kprobes/testevent do_exit", EEXIST,
                E.DIFF_PROBE_TYPE)
    assert env.write("kprobe_events", "p:kprobes/testevent kernel_clone abcd=\\1",
                     append=False) == 0
    for cmd in ("p:kprobes/testevent kernel_clone ^bcd=\\1",
                "p:kprobes/testevent kernel_clone ^abcd=\\1:u8",
                'p:kprobes/testevent kernel_clone ^abcd=\\"foo"'):
        check_error(env, "trace_kprobe", "kprobe_events", cmd, EEXIST, E.DIFF_ARG_TYPE)
    check_error(env, "trace_kprobe", "kprobe_events", "^p:kprobes/testevent kernel_clone abcd=\\1",
                EEXIST, E.SAME_PROBE)
    assert env.write("kprobe_events", "", append=False) == 0


def test_kprobe_non_unique_symbol(env: Env) -> None:
    check_error(env, "trace_kprobe", "kprobe_events", "p:test_non_unique ^name_show", EINVAL,
                E.NON_UNIQ_SYMBOL)


UPROBE_CASES = [
    ("p ^/non_exist_file:100", ENOENT, E.FILE_NOT_FOUND),
    ("p ^/sys:100", EINVAL, E.NO_REGULAR_FILE),
    ("p /bin/sh:^10a", EINVAL, E.BAD_UPROBE_OFFS),
    ("p /bin/sh:10(^1a)", EINVAL, E.BAD_REFCNT),
    ("p /bin/sh:10(10^", EINVAL, E.REFCNT_OPEN_BRACE),
    ("p /bin/sh:10(10)^a", EINVAL, E.BAD_REFCNT_SUFFIX),
    ("p /bin/sh:10 ^@+ab", EINVAL, E.BAD_FILE_OFFS),
    ("p /bin/sh:10 ^@symbol", EINVAL, E.SYM_ON_UPROBE),
    ("p /bin/sh:10^%hoge", EINVAL, E.BAD_ADDR_SUFFIX),
    ("p /bin/sh:10(10)^%return", EINVAL, E.BAD_REFCNT_SUFFIX),
    ("p /bin/sh:10 $stack0:^symstr", EINVAL, E.BAD_TYPE),
]


@pytest.mark.parametrize("cmd,err,text", UPROBE_CASES, ids=[c[0] for c in UPROBE_CASES])
def test_uprobe_syntax_errors(env: Env, cmd: str, err: int, text: ProbeErr) -> None:
    check_error(env, "trace_uprobe", "uprobe_events", cmd, err, text)
    assert env.read("uprobe_events") == ""


# ----------------------------------------------------------------------------- show / add / remove
@pytest.fixture
def fresh() -> Env:
    return Env()


def test_show_text_and_auto_names(fresh: Env) -> None:
    env = fresh
    for line in ("p:kp vfs_read $arg1", "r:kr vfs_read $retval", "p vfs_read+9 %ax +8(%di):u32",
                 "r vfs_write", "p:mygrp/ev vfs_read%return", "r5 kernel_clone",
                 "p kfree $arg*", "p:g2/ mutex_lock"):
        assert env.write("kprobe_events", line) == 0, line
    assert env.read("kprobe_events") == (
        "p:kprobes/kp vfs_read file=file\n"
        "r10:kprobes/kr vfs_read arg1=$retval\n"
        "p:kprobes/p_vfs_read_9 vfs_read+9 arg1=%ax arg2=+8(%di):u32\n"
        "r10:kprobes/r_vfs_write_0 vfs_write\n"
        "r10:mygrp/ev vfs_read\n"
        "r5:kprobes/r_kernel_clone_0 kernel_clone\n"
        "p:kprobes/p_kfree_0 kfree object=object\n"
        "p:g2/p_mutex_lock_0 mutex_lock\n")
    assert env.read("dynamic_events") == env.read("kprobe_events")
    fmt = env.read("events/kprobes/kr/format")
    assert "\tfield:unsigned long __probe_func;\toffset:8;\tsize:8;\tsigned:0;\n" in fmt
    assert "\tfield:unsigned long __probe_ret_ip;\toffset:16;\tsize:8;\tsigned:0;\n" in fmt
    assert 'print fmt: "(%lx <- %lx) arg1=%Ld", REC->__probe_func, REC->__probe_ret_ip, REC->arg1' in fmt
    fmt = env.read("events/kprobes/kp/format")
    assert "\tfield:u64 file;\toffset:16;\tsize:8;\tsigned:0;\n" in fmt
    # removal by name, by group, by full definition
    assert env.write("kprobe_events", "-:kp") == 0
    assert env.write("kprobe_events", "-:mygrp/") == 0
    assert env.write("kprobe_events", "-:p_vfs_read_9 vfs_read+9 arg1=%ax arg2=+8(%di):u32") == 0
    assert env.write("kprobe_events", "-:nonexistent") == ENOENT
    assert "kp " not in env.read("kprobe_events")
    assert "mygrp" not in env.read("kprobe_events")
    assert "p_vfs_read_9" not in env.read("kprobe_events")
    # other kinds' syntax is rejected by kprobe_events without an error_log entry
    env.clear_log()
    assert env.write("kprobe_events", "f:x vfs_read") == EINVAL
    assert env.tr.err_log == []
    # O_TRUNC clears the kprobes only
    assert env.write("dynamic_events", "f:fp vfs_read") == 0
    assert env.write("kprobe_events", "", append=False) == 0
    assert env.read("kprobe_events") == ""
    assert env.read("dynamic_events") == "f:fprobes/fp vfs_read\n"


def test_address_probe_and_return_suffix(fresh: Env) -> None:
    env = fresh
    addr = env.k.kallsyms.addr_of("tracefs_create_dir")
    assert env.write("kprobe_events", f"p:testprobe {addr:#x}", append=False) == 0
    text = env.read("kprobe_events")
    assert text.startswith("p:kprobes/testprobe 0x") and len(text.split()[1]) == 18
    nxt = env.k.kallsyms.lookup_addr(addr)[2]
    while env.k.kallsyms.lookup_addr(addr + nxt)[0].startswith("__pfx_"):   # probepoint.tc
        nxt += env.k.kallsyms.lookup_addr(addr + nxt)[2]
    assert env.write("kprobe_events", f"p:testprobe tracefs_create_dir+{nxt}", append=False) == 0
    assert env.write("kprobe_events", "p:testprobe tracefs_create_dir-16", append=False) == EINVAL
    assert env.write("kprobe_events", "p:testprobe tracefs_create_dir+0x100000000",
                     append=False) == EINVAL
    assert env.write("kprobe_events", "r:myprobeaccept vfs_read", append=False) == 0
    r1 = env.read("kprobe_events")
    assert env.write("kprobe_events", "p:myprobeaccept vfs_read%return", append=False) == 0
    assert env.read("kprobe_events") == r1
    for bad in ("a:myprobeaccept inet_csk_accept", "r1000000:myprobeaccept inet_csk_accept",
                "r10fuzz:myprobeaccept inet_csk_accept"):
        assert env.write("kprobe_events", bad, append=False) == EINVAL
    # a notrace function cannot be probed
    assert env.write("kprobe_events", "p _stext", append=False) == EINVAL
    assert env.tr.err_log[-1].text == E.FAIL_REG_PROBE.value


def test_insn_layout() -> None:
    start = 0xFFFFFFFF81000000
    assert insn_boundary(start, 0, 4) and insn_boundary(start, 4, 4) and insn_boundary(start, 9, 4)
    assert not any(insn_boundary(start, o, 4) for o in (1, 2, 3, 5, 6, 7, 8))
    assert insn_boundary(start, 5, 0) and not insn_boundary(start, 3, 0)
    body = [o for o in range(9, 200) if insn_boundary(start, o, 4)]
    assert 20 < len(body) < 120
    assert regs_query_register_offset("di") == 112
    assert regs_query_register_offset("ex") < 0


def test_insn_boundary_sweep(fresh: Env) -> None:
    """kprobe_insn_boundary.tc: some offsets register, others are refused with EILSEQ."""
    env = fresh
    ok = [i for i in range(256) if env.write("kprobe_events", f"p kernel_clone+{i}") == 0]
    assert 0 in ok and 4 in ok and 9 in ok and 3 not in ok
    assert env.write("events/kprobes/enable", "1") == 0
    assert env.write("events/kprobes/enable", "0") == 0
    assert env.write("kprobe_events", "", append=False) == 0


def test_multiple_kprobes(fresh: Env) -> None:
    env = fresh
    ks = env.k.kallsyms
    n = 0
    for line in ks.text_lines():
        name = line.split()[2]
        if "." in name or line.split()[1] not in "tT":
            continue
        if env.write("kprobe_events", f"p {name}+5") == 0:
            n += 1
        if n == 256:
            break
    assert env.read("kprobe_events").count("\n") == 256
    assert env.write("events/kprobes/enable", "1") == 0
    assert env.write("events/kprobes/enable", "0") == 0
    assert env.write("kprobe_events", "", append=False) == 0


# ----------------------------------------------------------------------------- busy / firing
def _read_syscall(env: Env, name: str = "hello.txt") -> None:
    env.k.syscall_enter(4321, "cat", 0, op="read", name=name, count=100)
    env.k.syscall_exit()


def test_busy_enabled_functions_and_trace(fresh: Env) -> None:
    env = fresh
    assert env.write("kprobe_events",
                     "p:mykp vfs_read file=$arg1 count=$arg3:u64 "
                     "name=+0(+0x28(+0x48(%di))):string", append=False) == 0
    assert env.write("kprobe_events", "r:mykr vfs_read $retval") == 0
    assert env.read("enabled_functions") == ""
    assert env.write("events/kprobes/mykp/enable", "1") == 0
    line = env.read("enabled_functions")
    assert line.startswith("vfs_read (1) R         \ttramp: 0x")
    assert line.endswith(" (kprobe_ftrace_handler+0x0/0x1d0) ->kprobe_ftrace_handler+0x0/0x1d0\n")
    assert env.write("events/kprobes/mykr/enable", "1") == 0
    assert env.read("enabled_functions") == line          # one aggregated kprobe
    assert env.write("kprobe_events", "", append=False) == errno.EBUSY
    assert env.write("kprobe_events", "-:mykp") == errno.EBUSY
    _read_syscall(env)
    trace = env.read("trace")
    assert "mykp: (vfs_read+0x4/0x" in trace
    assert 'count=100 name="hello.txt"' in trace
    assert "mykr: (ksys_read+0x" in trace and " <- vfs_read) arg1=0" in trace
    prof = env.read("kprobe_profile")
    assert prof == (f"  {'mykp':<44} {1:>15} {0:>15}\n"
                    f"  {'mykr':<44} {1:>15} {0:>15}\n")
    assert env.write("events/kprobes/enable", "0") == 0
    assert env.read("enabled_functions") == ""
    assert "vfs_read (0)" in env.read("touched_functions")
    _read_syscall(env)
    assert env.read("kprobe_profile").split()[1] == "1"
    assert env.write("kprobe_events", "", append=False) == 0
    assert env.read("kprobe_profile") == ""


def test_breakpoint_probe_fires_via_core(fresh: Env) -> None:
    env = fresh
    assert env.write("kprobe_events", "p:bp vfs_read+9 %di $stack") == 0
    assert env.write("events/kprobes/bp/enable", "1") == 0
    assert env.read("enabled_functions") == ""         # int3, not ftrace
    core = env.k.kprobes
    idx = env.k.kallsyms.index_of("vfs_read")
    assert idx in core.bp_funcs
    from tracefs_sim.kernel.mm import Regs

    env.k.syscall_enter(77, "cat", 1)
    core.breakpoint_hit(idx, 0, Regs((0x1234, 2, 3)))
    env.k.syscall_exit()
    assert "bp: (vfs_read+0x9/0x" in env.read("trace")
    assert "arg1=0x1234 arg2=0x" in env.read("trace")
    assert env.write("events/kprobes/bp/enable", "0") == 0
    assert idx not in core.bp_funcs


def test_uprobe_add_fire_remove(fresh: Env) -> None:
    env = fresh
    assert env.write("uprobe_events", "p:myevent /bin/sh:0x4000 %ip %ax", append=False) == 0
    assert env.write("uprobe_events", "r /bin/sh:0x10(0x20)") == 0
    assert env.read("uprobe_events") == (
        "p:uprobes/myevent /bin/sh:0x0000000000004000 arg1=%ip arg2=%ax\n"
        "r:uprobes/p_sh_0x10 /bin/sh:0x0000000000000010(0x20)\n")
    assert env.read("kprobe_events") == ""
    assert env.write("kprobe_events", "p:x /bin/sh:0x10") == EINVAL
    assert env.write("events/uprobes/myevent/enable", "1") == 0
    env.k.syscall_enter(999999, "sh", 0)
    env.k.syscall_exit()
    assert env.write("events/uprobes/myevent/enable", "0") == 0
    trace = env.read("trace")
    assert "myevent: (0x" in trace and "arg2=0x0" in trace
    assert env.read("uprobe_profile") == (
        f"  /bin/sh {'myevent':<44} {1:>15}\n  /bin/sh {'p_sh_0x10':<44} {0:>15}\n")
    assert env.write("uprobe_events", "-:myevent") == 0
    assert "myevent" not in env.read("uprobe_events")
    assert env.write("uprobe_events", "", append=False) == 0
    assert env.read("uprobe_profile") == ""


# ----------------------------------------------------------------------------- fetched memory
def test_eventfs_create_dir_name_is_a_kernel_string(fresh: Env) -> None:
    """kprobe_args_string.tc / kprobe_args_char.tc: a new event's directory is made by
    eventfs_create_dir(name, ...), so ``+0(%di)`` reads the event's name."""
    env = fresh
    assert env.write("kprobe_events", "p:testprobe eventfs_create_dir arg1=+0(%di):string "
                     "arg2=+0(%di):char arg3=+0(%di):char[4]", append=False) == 0
    assert env.write("events/kprobes/testprobe/enable", "1") == 0
    assert env.write("kprobe_events", "p:test kernel_clone") == 0
    assert "testprobe: (eventfs_create_dir+0x4/0x" in env.read("trace")
    assert "arg1=\"test\" arg2='t' arg3={'t','e','s','t'}" in env.read("trace")


def test_linux_proc_banner_symbol(fresh: Env) -> None:
    """kprobe_args_symbol.tc: linux_proc_banner is an R symbol whose string is
    /proc/version's format."""
    from tracefs_sim.kernel.version import LINUX_PROC_BANNER, proc_version

    env = fresh
    ks = env.k.kallsyms
    assert any(ln.endswith(" R linux_proc_banner") for ln in ks.text_lines())
    assert env.write("kprobe_events", "p:s kernel_clone arg1=@linux_proc_banner:string "
                     "arg2=@linux_proc_banner:u8", append=False) == 0
    assert env.write("events/kprobes/enable", "1") == 0
    env.k.workload.shell.run_child(0)
    trace = env.read("trace")
    assert f'arg1="{LINUX_PROC_BANNER}" arg2=37' in trace
    assert proc_version().startswith("Linux version 6.12.117+deb12-amd64 (debian-kernel@")


def test_readded_event_has_a_fresh_directory(fresh: Env) -> None:
    """busy_check.tc: an event removed and added again under the same name gets a
    directory with its files (not the cached one of the freed call)."""
    env = fresh
    assert env.write("kprobe_events", "p:myevent kernel_clone", append=False) == 0
    assert env.read("events/kprobes/myevent/enable") == "0\n"
    assert env.write("kprobe_events", "", append=False) == 0
    assert env.write("kprobe_events", "p:myevent kernel_clone") == 0
    assert env.write("events/kprobes/myevent/enable", "1") == 0
    assert env.read("events/kprobes/myevent/enable") == "1\n"


def test_kernel_mode_fetches_of_user_addresses_read_user_memory() -> None:
    """x86-64 (CONFIG_ARCH_HAS_NON_OVERLAPPING_ADDRESS_SPACE): ``+0(%si):string`` of a
    user pointer reads user memory (perf-tools' opensnoop relies on it), while
    ``:ustring``/``+u`` of a kernel pointer fault (a faulted number reads 0)."""
    e = Env()
    assert e.write("kprobe_events", "p:op do_sys_openat2 f=+0(%si):string u=+0(%si):ustring "
                   "c=+0(%si):u8", append=False) == 0
    assert e.write("kprobe_events", "p:sl vfs_symlink d=+0($arg3):ustring k=+u0($arg3):u64") == 0
    assert e.write("events/kprobes/enable", "1") == 0
    e.k.syscall_enter(4242, "sh", 0, op="openat", name="null", path="/dev/null")
    e.k.syscall_exit(3)
    e.k.syscall_enter(4243, "ln", 0, op="symlinkat", name="bar", path=("foo", "/tmp/bar"))
    e.k.syscall_exit(0)
    assert e.write("events/kprobes/enable", "0") == 0
    lines = e.read("trace").splitlines()
    assert any("sh-4242" in ln and 'f="/dev/null" u="/dev/null" c=47' in ln for ln in lines), lines
    assert any("ln-4243" in ln and "d=(fault) k=0" in ln for ln in lines), lines
