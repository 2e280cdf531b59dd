"""Documentation/trace/fprobetrace.rst (6.12), followed with real shell commands on a mount.

Each test runs the document's commands through ``sh`` in the mounted simulator and checks
what the document shows (definitions, formats, trace lines), with the simulated kernel's
own activity: reads of the mount's files are ``vfs_read`` calls of the reading process.
"""

from __future__ import annotations

import re

import pytest
from conftest import sh

pytestmark = pytest.mark.mount

CTX = r"^\s*(?P<comm>\S+)-(?P<pid>\d+)\s+\[\d{3}\] (?P<flags>.{5})\s+\d+\.\d{6}: "


def run(mnt, cmd: str, timeout: float = 10) -> str:
    r = sh(mnt, cmd, timeout)
    assert r.returncode == 0, (cmd, r.stdout, r.stderr)
    return r.stdout


def test_btf_arguments_pick_names_and_types(mounted):
    run(mounted, "echo 'f:myprobe vfs_read count pos' >> dynamic_events")
    assert run(mounted, "cat dynamic_events") == "f:fprobes/myprobe vfs_read count=count pos=pos\n"
    fmt = run(mounted, "cat events/fprobes/myprobe/format")
    assert fmt.startswith("name: myprobe\nID: ")
    assert "\tfield:u64 count;\toffset:16;\tsize:8;\tsigned:0;\n" \
           "\tfield:u64 pos;\toffset:24;\tsize:8;\tsigned:0;\n" in fmt
    assert fmt.endswith('print fmt: "(%lx) count=%Lu pos=0x%Lx", REC->__probe_ip, REC->count, '
                        'REC->pos\n')
    run(mounted, "echo > dynamic_events")
    run(mounted, "echo 'f:myprobe vfs_read $arg*' >> dynamic_events")
    assert run(mounted, "cat dynamic_events") == \
        "f:fprobes/myprobe vfs_read file=file buf=buf count=count pos=pos\n"
    run(mounted, "echo > dynamic_events")
    assert run(mounted, "cat dynamic_events") == ""


def test_usage_example_vfs_read_entry_and_exit(mounted):
    run(mounted, "echo 'f vfs_read $arg*' >> dynamic_events")
    run(mounted, "echo 'f vfs_read%return $retval' >> dynamic_events")
    assert run(mounted, "cat dynamic_events") == (
        "f:fprobes/vfs_read__entry vfs_read file=file buf=buf count=count pos=pos\n"
        "f:fprobes/vfs_read__exit vfs_read%return arg1=$retval\n")
    run(mounted, "echo 1 > events/fprobes/enable")
    # a reader of the mount: its read() runs vfs_read in the simulated kernel
    run(mounted, "cat README > /dev/null")
    run(mounted, "echo 0 > tracing_on")
    trace = run(mounted, "cat trace")
    entry = re.compile(CTX + r"vfs_read__entry: \(vfs_read\+0x4/0x370\) file=0x[0-9a-f]+ "
                       r"buf=0x[0-9a-f]+ count=(?P<count>\d+) pos=0x[0-9a-f]+$")
    exit_ = re.compile(CTX + r"vfs_read__exit: \(ksys_read\+0x[0-9a-f]+/0xf0 <- vfs_read\) "
                       r"arg1=(?P<ret>-?\d+)$")
    entries = [m for m in map(entry.match, trace.splitlines()) if m and m["comm"] == "cat"]
    exits = [m for m in map(exit_.match, trace.splitlines()) if m and m["comm"] == "cat"]
    assert entries and exits, trace
    assert all(m["flags"] == "...1." for m in entries + exits)   # two fprobes share vfs_read
    readme = run(mounted, "cat README")
    # cat's read of the file returns its size (the dynamic loader's reads come first)
    assert len(readme.encode()) in [int(m["ret"]) for m in exits]
    # enabled probes are busy
    r = sh(mounted, "/bin/echo '-:fprobes/vfs_read__entry' >> dynamic_events")
    assert r.returncode != 0 and "Device or resource busy" in r.stderr
    r = sh(mounted, "/bin/echo > dynamic_events")
    assert r.returncode != 0 and "Device or resource busy" in r.stderr
    run(mounted, "echo 0 > events/fprobes/enable; echo 1 > tracing_on")
    run(mounted, "echo '-:fprobes/vfs_read__entry' >> dynamic_events")
    assert run(mounted, "ls events/fprobes") == "enable\nfilter\nvfs_read__exit\n"
    run(mounted, "echo > dynamic_events")
    assert "fprobes" not in run(mounted, "ls events").split()


def test_tracepoint_probe_shows_raw_parameters(mounted):
    run(mounted, "echo 't sched_switch $arg*' >> dynamic_events")
    assert run(mounted, "cat dynamic_events") == \
        "t:tracepoints/sched_switch sched_switch preempt=preempt prev=prev next=next " \
        "prev_state=prev_state\n"
    run(mounted, "echo 1 > events/sched/sched_switch/enable")
    run(mounted, "echo 1 > events/tracepoints/sched_switch/enable")
    run(mounted, "echo > trace")
    run(mounted, "for i in 1 2 3; do cat README > /dev/null; done")
    run(mounted, "echo 0 > tracing_on")
    lines = run(mounted, "cat trace").splitlines()
    cooked = [i for i, line in enumerate(lines) if ": sched_switch: prev_comm=" in line]
    raw = re.compile(CTX + r"sched_switch: \(__probestub_sched_switch\+0x4/0x10\) preempt=0 "
                     r"prev=0x[0-9a-f]+ next=0x[0-9a-f]+ prev_state=\d+$")
    assert cooked
    for i in cooked:   # each cooked event is followed by the raw one of the same switch
        m = raw.match(lines[i + 1])
        assert m and m["flags"] == "d..3.", lines[i:i + 2]


def test_tracepoint_probe_dereferences_task_fields(mounted):
    run(mounted, "echo 't sched_switch comm=next->comm:string next_pid=next->pid' > dynamic_events")
    run(mounted, "echo 1 > events/sched/sched_switch/enable")
    run(mounted, "echo 1 > events/tracepoints/enable")
    run(mounted, "for i in 1 2 3; do cat README > /dev/null; done")
    run(mounted, "echo 0 > tracing_on")
    lines = run(mounted, "cat trace").splitlines()
    cooked = re.compile(CTX + r"sched_switch: prev_comm=.* ==> next_comm=(?P<next>.*) "
                        r"next_pid=(?P<npid>\d+) next_prio=\d+$")
    raw = re.compile(CTX + r'sched_switch: \(__probestub_sched_switch\+0x4/0x10\) '
                     r'comm="(?P<next>[^"]*)" next_pid=(?P<npid>\d+)$')
    pairs = [(cooked.match(a), raw.match(b)) for a, b in zip(lines, lines[1:], strict=False)]
    pairs = [(c, r) for c, r in pairs if c and r]
    assert pairs, "\n".join(lines)
    # next->comm and next->pid read from the task_struct are what the event recorded
    for c, r in pairs:
        assert (r["next"], r["npid"]) == (c["next"], c["npid"])
    assert any(int(r["npid"]) > 0 for _, r in pairs)


def test_syntax_errors_go_to_error_log(mounted):
    # (dash's echo says "I/O error" for any failed write: coreutils' echo tells which)
    r = sh(mounted, "/bin/echo 'f vfs_read%return $arg1 $foo' >> dynamic_events")
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    assert run(mounted, "cat error_log").endswith(
        "trace_fprobe: error: Invalid $-variable specified\n"
        "  Command: f vfs_read%return $arg1 $foo\n"
        "                                   ^\n")
    r = sh(mounted, "echo 't:mytp sched_switch $retval' >> dynamic_events")
    assert r.returncode != 0
    assert run(mounted, "cat error_log").endswith(
        "trace_fprobe: error: $retval is not available on probe\n"
        "  Command: t:mytp sched_switch $retval\n"
        "                               ^\n")
