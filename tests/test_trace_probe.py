"""The probe parser, dyn_event registry and the f/t kinds against the real 6.12 kernel.

Error cases are those of tools/testing/selftests/ftrace/test.d/dynevent/
fprobe_syntax_errors.tc and tprobe_syntax_errors.tc; messages, errnos and caret
columns are those of the golden transcript 13-fprobe-syntax-errors.txt.  Normalised
definitions, fields and print fmts are those of 12-dynamic_events.txt.

The kind runs with the real kallsyms and BTF data and small fakes for the event
registry and the ftrace side of fprobe.
"""

from __future__ import annotations

import errno

import pytest

from tracefs_sim.kernel import Kernel
from tracefs_sim.kernel.lib import kstrtoul, sanitize_event_name
from tracefs_sim.kernel.trace_dynevent import ProbeLog, parse_run_command
from tracefs_sim.kernel.trace_probe import FetchEnv, ProbeErr, TraceProbe
from tracefs_sim.kernel.trace_probe_tmpl import (
    get_data_size,
    print_args,
    process_fetch_insn,
    store_trace_args,
)


class Env:
    """The fprobe kind of a booted kernel, with its error_log entries as
    (location, command, text, caret position)."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.log: list[tuple[str, str, str, int]] = []
        self.dyn = k.dynevent
        self.dyn.probe_log.sink = lambda loc, cmd, text, pos: self.log.append((loc, cmd, text, pos))
        self.kind = k.fprobe_events
        assert self.dyn.release_all() == 0

    def write(self, text: str, trunc: bool = False) -> int:
        """``echo TEXT >> dynamic_events`` (``>`` with trunc): 0 or errno."""
        if trunc:
            ret = self.dyn.release_all()
            if ret:
                return -ret
        ret = parse_run_command(text.encode(), self.dyn.create)
        return -ret if ret < 0 else 0

    def show(self) -> str:
        return self.dyn.show()

    def last_err_line_len(self) -> int:
        """``tail -n 1 error_log | wc -c`` of the last entry: 13 + caret column."""
        return len("  Command: ") + self.log[-1][3] + 2


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    return Kernel(nr_cpus=2, seed=1)


@pytest.fixture
def env(kernel: Kernel) -> Env:
    return Env(kernel)


def check_error(env: Env, cmd_with_caret: str, err: int, text: str | None,
                entries: int = 1) -> None:
    """ftrace_errlog_check: the command without '^' fails, caret where '^' was."""
    pos = cmd_with_caret.rfind("^")
    cmd = cmd_with_caret.replace("^", "")
    env.log.clear()
    ret = env.write(cmd)
    assert ret == err, (cmd, errno.errorcode.get(ret, ret))
    assert len(env.log) == entries, env.log
    loc, logged_cmd, logged_text, logged_pos = env.log[-1]
    assert loc == "trace_fprobe"
    assert logged_cmd == cmd
    assert logged_pos == pos, (cmd, logged_pos, pos)
    if text is not None:
        assert logged_text == text
    assert env.last_err_line_len() == 13 + pos


E = ProbeErr
EINVAL, ENOENT, EEXIST, E2BIG = errno.EINVAL, errno.ENOENT, errno.EEXIST, errno.E2BIG

# (command with ^, errno, error_log text, number of entries) from 13-fprobe-syntax-errors.txt
FPROBE_CASES = [
    ("f^100 vfs_read", EINVAL, "Maxactive is only for function exit", 1),
    ("f^1a111 vfs_read", EINVAL, "Invalid maxactive number", 1),
    ("f^100000 vfs_read", EINVAL, "Maxactive is too big", 1),
    ("f ^non_exist_func", EINVAL, "Failed to register probe event", 1),
    ("f ^vfs_read+10", EINVAL, "Failed to register probe event", 1),
    ("f:^/bar vfs_read", EINVAL, "Group name is not specified", 1),
    ("f:^12345678901234567890123456789012345678901234567890123456789012345/bar vfs_read",
     EINVAL, "Group name is too long", 1),
    ("f:^foo.1/bar vfs_read", EINVAL, "Group name must follow the same rules as C identifiers", 1),
    ("f:^ vfs_read", EINVAL, "Event name is not specified", 1),
    ("f:foo/^12345678901234567890123456789012345678901234567890123456789012345 vfs_read",
     EINVAL, "Event name is too long", 1),
    ("f:foo/^bar.1 vfs_read", EINVAL, "Event name must follow the same rules as C identifiers", 1),
    ("f vfs_read ^$stack10000", EINVAL, "Invalid stack number", 1),
    ("f vfs_read ^$arg10000", ENOENT, "This variable is not found at this probe point", 1),
    ("f vfs_read ^$none_var", EINVAL, "Invalid $-variable specified", 1),
    ("f vfs_read ^%ax", EINVAL, "Invalid fetch argument", 2),
    ("f vfs_read ^@12345678abcde", EINVAL, "Invalid memory address", 1),
    ("f vfs_read ^@+10", EINVAL, "File offset is not available with kprobe", 1),
    ("f vfs_read arg1=\\^x", EINVAL, "Invalid immediate value", 1),
    ('f vfs_read arg1=\\"abcd^', EINVAL, "String is not closed with '\"'", 1),
    ("f vfs_read ^+0@0)", EINVAL, "Dereference needs a brace", 1),
    ("f vfs_read ^+0ab1(@0)", EINVAL, "Invalid dereference offset", 1),
    ("f vfs_read +0(+0(@0^)", EINVAL, "Dereference brace is not closed", 1),
    ("f vfs_read +0(^$comm)", EINVAL, "$comm can not be dereferenced", 1),
    ("f vfs_read ^&1", EINVAL, "Invalid fetch argument", 1),
    ("f vfs_read +0(^+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(@0))))))))))))))", EINVAL,
     "Dereference is too much nested", 1),
    ("f vfs_read +0(@11):u8[10^", EINVAL, "Array is not closed", 1),
    ("f vfs_read +0(@11):u8[10]^a", EINVAL, "Array has wrong suffix", 1),
    ("f vfs_read +0(@11):u8[^10a]", EINVAL, "Invalid array size", 1),
    ("f vfs_read +0(@11):u8[^256]", EINVAL, "Array number is too big", 1),
    ("f vfs_read @11:^unknown_type", EINVAL, "Unknown type is specified", 1),
    ("f vfs_read $stack0:^string", EINVAL, "String accepts only memory argument", 1),
    ("f vfs_read @11:^b10@a/16", EINVAL, "Invalid bitfield", 1),
    ("f vfs_read ^arg123456789012345678901234567890=@11", EINVAL, "Argument name is too long", 1),
    ("f vfs_read ^=@11", EINVAL, "Argument name is not specified", 1),
    ("f vfs_read ^var.1=@11", EINVAL,
     "Argument name must follow the same rules as C identifiers", 1),
    ("f vfs_read var1=@11 ^var1=@12", EINVAL, "This argument name is already used", 1),
    ("f vfs_read ^+1234567(+1234567(+1234567(+1234567(+1234567(+1234567(@1234))))))", E2BIG,
     "Argument expression is too long", 1),
    ("f vfs_read arg1=^", EINVAL, "No argument expression", 1),
    ("f vfs_read^%hoge", EINVAL, "Invalid probed address suffix", 1),
    ("f vfs_read args=^$arg*", EINVAL, "Invalid $-variable specified", 1),
    ("f vfs_read +0(^$arg*)", EINVAL, "Invalid $-variable specified", 1),
    ("f vfs_read $arg* ^$arg*", EINVAL, "$arg* can be used only once in the parameters", 1),
    ("f vfs_read ^hoge", ENOENT, "This variable is not found at this probe point", 1),
    ("f kfree ^$arg10", ENOENT, "This variable is not found at this probe point", 1),
    ("f kfree%return ^$retval", ENOENT, "This function returns 'void' type", 1),
    ("f vfs_read%return $retval->^foo", EINVAL, "This is not a pointer to union/structure.", 1),
    ("f vfs_read file->^foo", ENOENT, "This field is not found.", 1),
    ("f vfs_read file^-.foo", EINVAL, "Failed to parse single hyphen. Forgot '>'?", 1),
    ("f vfs_read ^file:string", EINVAL, "This type does not fit for string.", 1),
]


@pytest.mark.parametrize("cmd,err,text,entries", FPROBE_CASES, ids=[c[0] for c in FPROBE_CASES])
def test_fprobe_syntax_errors(env: Env, cmd: str, err: int, text: str, entries: int) -> None:
    check_error(env, cmd, err, text, entries)
    assert env.show() == ""


def test_fprobe_ax_logs_bad_var_then_bad_fetch_arg(env: Env) -> None:
    check_error(env, "f vfs_read ^%ax", EINVAL, None, 2)
    assert [e[2] for e in env.log] == ["Invalid $-variable specified", "Invalid fetch argument"]
    assert {e[3] for e in env.log} == {11}


def test_fprobe_multiprobe_errors(env: Env) -> None:
    assert env.write("f:fprobes/testevent kernel_clone\n", trunc=True) == 0
    assert env.show() == "f:fprobes/testevent kernel_clone\n"
    check_error(env, "^f:fprobes/testevent do_exit%return", EEXIST,
                "Probe type is different from existing probe")
    assert env.write("f:fprobes/testevent kernel_clone abcd=\\1", trunc=True) == 0
    assert env.show() == "f:fprobes/testevent kernel_clone abcd=\\1\n"
    diff = "Argument type or name is different from existing probe"
    check_error(env, "f:fprobes/testevent kernel_clone ^bcd=\\1", EEXIST, diff)
    check_error(env, "f:fprobes/testevent kernel_clone ^abcd=\\1:u8", EEXIST, diff)
    check_error(env, 'f:fprobes/testevent kernel_clone ^abcd=\\"foo"', EEXIST, diff)
    check_error(env, "^f:fprobes/testevent kernel_clone abcd=\\1", EEXIST,
                "There is already the exact same probe event")
    assert env.show() == "f:fprobes/testevent kernel_clone abcd=\\1\n"
    # a different symbol with the same arguments is appended to the event
    assert env.write("f:fprobes/testevent vfs_read abcd=\\1") == 0
    assert env.show() == ("f:fprobes/testevent kernel_clone abcd=\\1\n"
                          "f:fprobes/testevent vfs_read abcd=\\1\n")
    assert env.write("", trunc=True) == 0
    assert env.show() == ""


# tprobe_syntax_errors.tc: (command with ^, errno, text or None)
TPROBE_CASES = [
    ("t^100 kfree", EINVAL, "Maxactive is only for function exit"),
    ("t:^/bar kfree", EINVAL, "Group name is not specified"),
    ("t:^12345678901234567890123456789012345678901234567890123456789012345/bar kfree", EINVAL,
     "Group name is too long"),
    ("t:^foo.1/bar kfree", EINVAL, "Group name must follow the same rules as C identifiers"),
    ("t:^ kfree", EINVAL, "Event name is not specified"),
    ("t:foo/^12345678901234567890123456789012345678901234567890123456789012345 kfree", EINVAL,
     "Event name is too long"),
    ("t:foo/^bar.1 kfree", EINVAL, "Event name must follow the same rules as C identifiers"),
    ("t kfree ^$retval", EINVAL, "$retval is not available on probe"),
    ("t kfree ^$stack10000", EINVAL, "Invalid stack number"),
    ("t kfree ^$arg10000", ENOENT, "This variable is not found at this probe point"),
    ("t kfree ^$none_var", EINVAL, "Invalid $-variable specified"),
    ("t kfree ^%rax", EINVAL, "Invalid fetch argument"),
    ("t kfree ^@12345678abcde", EINVAL, "Invalid memory address"),
    ("t kfree ^@+10", EINVAL, "File offset is not available with kprobe"),
    ("t kfree arg1=\\^x", EINVAL, "Invalid immediate value"),
    ('t kfree arg1=\\"abcd^', EINVAL, "String is not closed with '\"'"),
    ("t kfree ^+0@0)", EINVAL, "Dereference needs a brace"),
    ("t kfree ^+0ab1(@0)", EINVAL, "Invalid dereference offset"),
    ("t kfree +0(+0(@0^)", EINVAL, "Dereference brace is not closed"),
    ("t kfree +0(^$comm)", EINVAL, "$comm can not be dereferenced"),
    ("t kfree ^&1", EINVAL, "Invalid fetch argument"),
    ("t kfree +0(^+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(@0))))))))))))))", EINVAL,
     "Dereference is too much nested"),
    ("t kfree +0(@11):u8[10^", EINVAL, "Array is not closed"),
    ("t kfree +0(@11):u8[10]^a", EINVAL, "Array has wrong suffix"),
    ("t kfree +0(@11):u8[^10a]", EINVAL, "Invalid array size"),
    ("t kfree +0(@11):u8[^256]", EINVAL, "Array number is too big"),
    ("t kfree @11:^unknown_type", EINVAL, "Unknown type is specified"),
    ("t kfree $stack0:^string", EINVAL, "String accepts only memory argument"),
    ("t kfree @11:^b10@a/16", EINVAL, "Invalid bitfield"),
    ("t kfree ^arg123456789012345678901234567890=@11", EINVAL, "Argument name is too long"),
    ("t kfree ^=@11", EINVAL, "Argument name is not specified"),
    ("t kfree ^var.1=@11", EINVAL, "Argument name must follow the same rules as C identifiers"),
    ("t kfree var1=@11 ^var1=@12", EINVAL, "This argument name is already used"),
    ("t kfree ^+1234567(+1234567(+1234567(+1234567(+1234567(+1234567(@1234))))))", E2BIG,
     "Argument expression is too long"),
    ("t kfree arg1=^", EINVAL, "No argument expression"),
]


@pytest.mark.parametrize("cmd,err,text", TPROBE_CASES, ids=[c[0] for c in TPROBE_CASES])
def test_tprobe_syntax_errors(env: Env, cmd: str, err: int, text: str) -> None:
    entries = 2 if "%rax" in cmd else 1
    check_error(env, cmd, err, text, entries)


def test_tprobe_multiprobe_errors(env: Env) -> None:
    assert env.write("t:tracepoint/testevent kfree\n", trunc=True) == 0
    check_error(env, "^f:tracepoint/testevent kfree", EEXIST,
                "Probe type is different from existing probe")
    assert env.write("t:tracepoints/testevent kfree abcd=\\1", trunc=True) == 0
    diff = "Argument type or name is different from existing probe"
    check_error(env, "t:tracepoints/testevent kfree ^bcd=\\1", EEXIST, diff)
    check_error(env, "t:tracepoints/testevent kfree ^abcd=\\1:u8", EEXIST, diff)
    check_error(env, 't:tracepoints/testevent kfree ^abcd=\\"foo"', EEXIST, diff)
    check_error(env, "^t:tracepoints/testevent kfree abcd=\\1", EEXIST,
                "There is already the exact same probe event")


# ----------------------------------------------------------------------------- 12-dynamic_events
GOLDEN_12_DEFS = [
    ("f:myprobe vfs_read", "f:fprobes/myprobe vfs_read"),
    ("f:myret vfs_read%return $retval", "f:fprobes/myret vfs_read%return arg1=$retval"),
    ("f:mygrp/ev2 vfs_write count=$arg3", "f:mygrp/ev2 vfs_write count=$arg3"),
    ("f:btf vfs_read file count", "f:fprobes/btf vfs_read file=file count=count"),
    ("f:btfall vfs_write $arg*", "f:fprobes/btfall vfs_write file=file buf=buf count=count pos=pos"),
    ("f:btfret vfs_read%return $retval count",
     "f:fprobes/btfret vfs_read%return arg1=$retval count=count"),
    ("f:btfderef vfs_read name=file->f_path.dentry->d_name.name:string pos=+0($arg4):s64",
     "f:fprobes/btfderef vfs_read name=file->f_path.dentry->d_name.name:string pos=+0($arg4):s64"),
    ("f vfs_open", "f:fprobes/vfs_open__entry vfs_open"),
    ("f vfs_open%return", "f:fprobes/vfs_open__exit vfs_open%return"),
    ("t:mytp sched_switch", "t:tracepoints/mytp sched_switch"),
    ("t sched_wakeup", "t:tracepoints/sched_wakeup sched_wakeup"),
    ("t:mygrp/tp3 sched_process_fork $arg*", "t:mygrp/tp3 sched_process_fork parent=parent child=child"),
]


def _fields(env: Env, group: str, name: str) -> tuple[list[str], str]:
    call = env.k.events.find_event(group, name)
    assert call is not None
    lines = [f"field:{f.type} {f.name};\toffset:{f.offset};\tsize:{f.size};\tsigned:{int(f.is_signed)};"
             for f in call.fields]
    return lines, call.print_fmt


def test_golden_12_definitions(env: Env) -> None:
    for cmd, _ in GOLDEN_12_DEFS:
        assert env.write(cmd + "\n") == 0, cmd
    assert env.show() == "".join(line + "\n" for _, line in GOLDEN_12_DEFS)
    assert env.log == []


def test_golden_12_second_tprobe_same_tracepoint_is_eexist(env: Env) -> None:
    assert env.write("t:mytp sched_switch\n") == 0
    assert env.write("t:mytp2 sched_switch prev_pid=prev->pid next_comm=next->comm prev_state\n") == EEXIST
    assert env.log == []
    assert env.write("-:tracepoints/mytp\n") == 0
    assert env.write("t:mytp2 sched_switch prev_pid=prev->pid next_comm=next->comm prev_state\n") == 0
    assert env.show() == ("t:tracepoints/mytp2 sched_switch prev_pid=prev->pid "
                          "next_comm=next->comm prev_state=prev_state\n")
    lines, fmt = _fields(env, "tracepoints", "mytp2")
    assert lines == [
        "field:unsigned long __probe_ip;\toffset:8;\tsize:8;\tsigned:0;",
        "field:s32 prev_pid;\toffset:16;\tsize:4;\tsigned:1;",
        "field:u64 next_comm;\toffset:20;\tsize:8;\tsigned:0;",
        "field:u32 prev_state;\toffset:28;\tsize:4;\tsigned:0;",
    ]
    assert fmt == ('"(%lx) prev_pid=%d next_comm=0x%Lx prev_state=%u", REC->__probe_ip, '
                   'REC->prev_pid, REC->next_comm, REC->prev_state')


@pytest.mark.parametrize("cmd,group,name,fields,fmt", [
    ("f:btf vfs_read file count", "fprobes", "btf",
     ["field:unsigned long __probe_ip;\toffset:8;\tsize:8;\tsigned:0;",
      "field:u64 file;\toffset:16;\tsize:8;\tsigned:0;",
      "field:u64 count;\toffset:24;\tsize:8;\tsigned:0;"],
     '"(%lx) file=0x%Lx count=%Lu", REC->__probe_ip, REC->file, REC->count'),
    ("f:btfall vfs_write $arg*", "fprobes", "btfall",
     ["field:unsigned long __probe_ip;\toffset:8;\tsize:8;\tsigned:0;",
      "field:u64 file;\toffset:16;\tsize:8;\tsigned:0;",
      "field:u64 buf;\toffset:24;\tsize:8;\tsigned:0;",
      "field:u64 count;\toffset:32;\tsize:8;\tsigned:0;",
      "field:u64 pos;\toffset:40;\tsize:8;\tsigned:0;"],
     '"(%lx) file=0x%Lx buf=0x%Lx count=%Lu pos=0x%Lx", REC->__probe_ip, REC->file, REC->buf, '
     'REC->count, REC->pos'),
    ("f:btfderef vfs_read name=file->f_path.dentry->d_name.name:string pos=+0($arg4):s64",
     "fprobes", "btfderef",
     ["field:unsigned long __probe_ip;\toffset:8;\tsize:8;\tsigned:0;",
      "field:__data_loc char[] name;\toffset:16;\tsize:4;\tsigned:1;",
      "field:s64 pos;\toffset:20;\tsize:8;\tsigned:1;"],
     '"(%lx) name=\\"%s\\" pos=%Ld", REC->__probe_ip, __get_str(name), REC->pos'),
    ("f:btfret vfs_read%return $retval count", "fprobes", "btfret",
     ["field:unsigned long __probe_func;\toffset:8;\tsize:8;\tsigned:0;",
      "field:unsigned long __probe_ret_ip;\toffset:16;\tsize:8;\tsigned:0;",
      "field:s64 arg1;\toffset:24;\tsize:8;\tsigned:1;",
      "field:u64 count;\toffset:32;\tsize:8;\tsigned:0;"],
     '"(%lx <- %lx) arg1=%Ld count=%Lu", REC->__probe_func, REC->__probe_ret_ip, REC->arg1, '
     'REC->count'),
    ("f:myprobe vfs_read", "fprobes", "myprobe",
     ["field:unsigned long __probe_ip;\toffset:8;\tsize:8;\tsigned:0;"], '"(%lx)", REC->__probe_ip'),
    ("f vfs_open%return", "fprobes", "vfs_open__exit",
     ["field:unsigned long __probe_func;\toffset:8;\tsize:8;\tsigned:0;",
      "field:unsigned long __probe_ret_ip;\toffset:16;\tsize:8;\tsigned:0;"],
     '"(%lx <- %lx)", REC->__probe_func, REC->__probe_ret_ip'),
    ("f:mygrp/ev2 vfs_write count=$arg3", "mygrp", "ev2",
     ["field:unsigned long __probe_ip;\toffset:8;\tsize:8;\tsigned:0;",
      "field:u64 count;\toffset:16;\tsize:8;\tsigned:0;"],
     '"(%lx) count=0x%Lx", REC->__probe_ip, REC->count'),
    ("t:mygrp/tp3 sched_process_fork $arg*", "mygrp", "tp3",
     ["field:unsigned long __probe_ip;\toffset:8;\tsize:8;\tsigned:0;",
      "field:u64 parent;\toffset:16;\tsize:8;\tsigned:0;",
      "field:u64 child;\toffset:24;\tsize:8;\tsigned:0;"],
     '"(%lx) parent=0x%Lx child=0x%Lx", REC->__probe_ip, REC->parent, REC->child'),
])
def test_golden_12_formats(env: Env, cmd, group, name, fields, fmt) -> None:
    assert env.write(cmd) == 0
    assert _fields(env, group, name) == (fields, fmt)


def test_golden_12_removal(env: Env) -> None:
    for cmd, _ in GOLDEN_12_DEFS:
        assert env.write(cmd) == 0
    assert env.write("-:myprobe") == 0
    assert "myprobe" not in env.show()
    assert env.write("-:fprobes/myret") == 0
    assert env.write("-:mygrp/ev2") == 0
    assert env.write("-:nosuchevent") == ENOENT
    assert env.write("-:fprobes/btf vfs_write") == ENOENT
    assert env.write("-:fprobes/btf vfs_read file count") == ENOENT
    assert env.log == []
    assert env.write("-:fprobes/btf vfs_read file=file count=count") == 0
    assert env.show().splitlines()[0] == "f:fprobes/btfall vfs_write file=file buf=buf count=count pos=pos"


def test_multiprobe_shares_event(env: Env) -> None:
    assert env.write("f:fprobes/multi vfs_read\nf:fprobes/multi vfs_write\n") == 0
    assert env.show() == "f:fprobes/multi vfs_read\nf:fprobes/multi vfs_write\n"
    assert len([c for c in env.k.events.calls if c.system == "fprobes"]) == 1
    # removing by name removes every probe of the event
    assert env.write("-:fprobes/multi") == 0
    assert env.show() == ""
    assert env.k.events.find_event("fprobes", "multi") is None


def test_busy_event_cannot_be_removed(env: Env) -> None:
    assert env.write("f:myprobe vfs_read") == 0
    pe = env.kind.probes()[0].event
    file = env.k.events.file(env.k.trace.global_trace, pe.call)
    assert pe.call.reg(pe.call, 0, file) == 0
    assert env.write("-:myprobe") == errno.EBUSY
    assert env.dyn.release_all() == -errno.EBUSY
    assert pe.call.reg(pe.call, 1, file) == 0
    assert env.dyn.release_all() == 0


def test_release_with_bang_and_comments(env: Env) -> None:
    assert env.write("f:a vfs_read # comment\n# only a comment\n\nf:b vfs_write\n") == 0
    assert env.show() == "f:fprobes/a vfs_read\nf:fprobes/b vfs_write\n"
    assert env.write("!f:a vfs_read") == 0
    assert env.show() == "f:fprobes/b vfs_write\n"


def test_first_failing_line_stops_the_write(env: Env) -> None:
    assert env.write("f:a vfs_read\nf:b nosuchfunc_xyz\nf:c vfs_write\n") == EINVAL
    assert env.show() == "f:fprobes/a vfs_read\n"


def test_not_mine_is_einval(env: Env) -> None:
    assert env.write("x:foo vfs_read") == EINVAL
    assert env.write("f") == EINVAL       # argc < 2 → -ECANCELED → EINVAL
    assert env.log == []


def test_auto_names_and_maxactive_show(env: Env) -> None:
    assert env.write("f10 vfs_read%return") == 0
    assert env.write("f:grp/ kfree") == 0
    # $retval makes it an exit probe: vfs_read__exit exists with other args → DIFF_ARG_TYPE
    env.log.clear()
    assert env.write("f vfs_read $retval") == EEXIST
    assert env.log[-1][2] == "Argument type or name is different from existing probe"
    assert env.log[-1][3] == len("f vfs_read ")
    assert env.show() == ("f10:fprobes/vfs_read__exit vfs_read%return\n"
                          "f:grp/kfree__entry kfree\n")
    assert env.write("f vfs_write $retval") == 0
    assert env.show().splitlines()[-1] == "f:fprobes/vfs_write__exit vfs_write%return arg1=$retval"


def test_dentry_args_expand(env: Env) -> None:
    assert env.write("f:testprobe vfs_read name=$arg1:%pD") == 0
    assert env.show() == "f:fprobes/testprobe vfs_read name=+0x0(+0x28(+0x48($arg1))):string\n"
    assert env.write("", trunc=True) == 0
    assert env.write("f:testprobe dput $arg1:%pd") == 0
    assert env.show() == "f:fprobes/testprobe dput arg1=+0x0(+0x28(dentry)):string\n"


def test_btf_args_selftest(env: Env) -> None:
    # add_remove_btfarg.tc
    assert env.write("f:fpevent kfree object\nt:tpevent kfree ptr\n") == 0
    assert "fpevent kfree object=object" in env.show()
    assert "tpevent kfree ptr=ptr" in env.show()
    assert env.write("", trunc=True) == 0
    assert env.write("f:fpevent kfree $arg*\nt:tpevent kfree $arg*\n") == 0
    assert "object=object" in env.show() and "_data" not in env.show()
    assert env.write("", trunc=True) == 0
    assert env.write("t:tpevent kmem_cache_alloc obj_size=s->object_size") == 0
    assert env.write("f:fpevent getname_flags%return path=$retval->name:string") == 0
    assert env.write("t:tpevent2 sched_wakeup p->se.group_node.next->prev") == 0
    text = env.show()
    assert "tpevent kmem_cache_alloc obj_size=s->object_size" in text
    assert "fpevent getname_flags%return path=$retval->name:string" in text
    assert "tpevent2 sched_wakeup arg1=p->se.group_node.next->prev" in text


# ----------------------------------------------------------------------------- unit bits
def test_probe_log_index_past_argc() -> None:
    out = []
    log = ProbeLog(lambda *a: out.append(a))
    log.init("trace_fprobe", ["f", "vfs_read"])
    log.set_index(5)
    log.err(7, ProbeErr.NO_ARG_BODY)
    assert out == [("trace_fprobe", "f vfs_read", "No argument expression", 11)]


def test_kstrtoul_forms() -> None:
    assert kstrtoul("0x10") == (0, 16)
    assert kstrtoul("010") == (0, 8)
    assert kstrtoul("10\n") == (0, 10)
    assert kstrtoul("1a")[0] == -errno.EINVAL
    assert kstrtoul("99999999999999999999")[0] == -errno.ERANGE


def test_sanitize_skips_first_char() -> None:
    assert sanitize_event_name("a.b:c*d") == "a_b_c_d"
    assert sanitize_event_name(".ab") == ".ab"


class Regs:
    def __init__(self, args, ret=0):
        self.args = args
        self.ret = ret

    def get_kernel_argument(self, n):
        return self.args[n]

    def return_value(self):
        return self.ret

    def kernel_stack_nth(self, n):
        return 0

    def stack_pointer(self):
        return 0


class Mem:
    def __init__(self, blocks):
        self.blocks = blocks

    def read(self, addr, size, user=False):
        for base, data in self.blocks.items():
            if base <= addr and addr + size <= base + len(data):
                return bytes(data[addr - base:addr - base + size])
        return None

    def read_str(self, addr, maxlen, user=False):
        for base, data in self.blocks.items():
            if base <= addr < base + len(data):
                raw = data[addr - base:]
                return bytes(raw[:raw.index(0)])
        return None


def test_record_roundtrip_types(env: Env) -> None:
    cmd = ("f:rt vfs_read a=$arg1:u8 b=$arg2:s16 c=$arg3:x32 d=$arg1:s64 e=+0($arg4):string "
           "f=$comm g=\\\"imm\" h=+0($arg4):u8[3] i=$arg3:b4@4/32 j=$arg2:char k=+8($arg4):string")
    assert env.write(cmd) == 0, env.log
    tp: TraceProbe = env.kind.probes()[0].tp
    mem = Mem({0x1000: b"hello\0XYZ" + (0x2000).to_bytes(8, "little"), 0x2000: b"w\0"})
    fe = FetchEnv(Regs([0x1FF, -2 & (2**64 - 1), 0xABCD, 0x1000]), mem, b"bash")
    dsize = get_data_size(tp, fe)
    assert dsize == 6 + 5 + 4 + 2
    head = 16
    buf = bytearray(head + tp.size + dsize)
    store_trace_args(buf, head, tp, fe, head, dsize)
    text = print_args(tp.args, buf, head, 0, lambda a: hex(a))
    assert text == (' a=255 b=-2 c=0xabcd d=511 e="hello" f="bash" g="imm" h={104,101,108}'
                    " i=12 j='\xfe' k=\"Z\"")  # +8(x):string is the string at x+8


def test_fault_string(env: Env) -> None:
    assert env.write("f:ft vfs_read e=+0($arg4):string") == 0
    tp = env.kind.probes()[0].tp
    fe = FetchEnv(Regs([0, 0, 0, 0x9999]), Mem({}), b"")
    buf = bytearray(16 + tp.size)
    store_trace_args(buf, 16, tp, fe, 16, 0)
    assert print_args(tp.args, buf, 16, 0, hex) == " e=(fault)"
    assert process_fetch_insn(tp.args[0].code, fe, None, 0, 0) < 0
