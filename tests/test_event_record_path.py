"""The one event record path (trace_events.py: trace_trigger_soft_disabled,
trace_event_buffer_reserve, trace_event_buffer_commit): every kind of event — a static
tracepoint, f/t/p/r/u/e probes and a synthetic event — honours ``set_event_pid``,
``set_event_notrace_pid``, soft-disable and the event ``filter`` the same way, as every
kernel event handler goes through trace_event_buffer_reserve/commit."""

from __future__ import annotations

import itertools

import pytest

from tracefs_sim.kernel import Kernel
from tracefs_sim.kernel.trace_events_synth import trace_synth
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import read_file, write_errno

# name: (definition file, definition, event dir, a filter that rejects the record,
#        one that keeps it)
KINDS = {
    "static": (None, None, "syscalls/sys_enter_read", "count == 1", "count == 100"),
    "f": ("dynamic_events", "f:fp vfs_read count=$arg3", "fprobes/fp", "count == 1", "count == 100"),
    "t": ("dynamic_events", "t:tp sys_enter id", "tracepoints/tp", "id == 5", "id == 0"),
    "p": ("dynamic_events", "p:kp vfs_read count=$arg3", "kprobes/kp", "count == 1", "count == 100"),
    "r": ("dynamic_events", "r:kr vfs_read ret=$retval", "kprobes/kr", "ret == 5", "ret == 0"),
    "u": ("uprobe_events", "p:up /bin/sh:0x10 x=%ax", "uprobes/up", "x == 5", "x == 0"),
    "e": ("dynamic_events", "e:ep syscalls.sys_enter_read cnt=$count", "eprobes/ep", "cnt == 1",
          "cnt == 100"),
    "synthetic": ("dynamic_events", "s:sy u64 v", "synthetic/sy", "v == 1", "v == 7"),
}
# an event the simulated workload never fires: its trigger only soft-enables the target
TRIGGER_HOST = "events/sched/sched_process_hang/trigger"


class Env:
    def __init__(self, kind: str) -> None:
        self.k = Kernel(nr_cpus=2, seed=1)
        self.root = build_tree(self.k)
        file, definition, self.event, self.reject, self.keep = KINDS[kind]
        self.name = self.event.split("/")[1]
        if file is not None:
            self.write(file, definition)
        self.pids = itertools.count(4321)

    def write(self, path: str, text: str, append: bool = True) -> None:
        ret = write_errno(self.root, path, text + "\n", append)
        assert ret == 0, (path, text, ret)

    def records(self, pid: int) -> int:
        """How many records of the event the task ``pid`` left in the trace."""
        text = read_file(self.root, "trace").decode()
        return sum(1 for ln in text.splitlines()
                   if f"-{pid} " in ln and (f" {self.name}: " in ln or " sys_read(" in ln))

    def fire(self, pid: int | None = None) -> int:
        """A task (``sh``, so the uprobe on /bin/sh hits too) reads: the syscall fires the
        tracepoints and function probes; a synthetic event fires from it as a hist
        action would.  Returns the pid."""
        pid = next(self.pids) if pid is None else pid
        k = self.k
        k.syscall_enter(pid, "sh", 0, op="read", name="x", count=100)
        if self.name == "sy":
            se = k.synth_events.find("sy")
            assert se is not None
            trace_synth(k, se, [7])
        k.syscall_exit()
        return pid


@pytest.fixture(params=list(KINDS))
def env(request: pytest.FixtureRequest) -> Env:
    return Env(request.param)


def test_records_when_enabled(env: Env) -> None:
    env.write(f"events/{env.event}/enable", "1")
    assert env.records(env.fire()) == 1


def test_set_event_pid(env: Env) -> None:
    env.write(f"events/{env.event}/enable", "1")
    env.write("set_event_pid", "1", append=False)        # only pid 1 is traced
    assert env.records(env.fire()) == 0
    pid = next(env.pids)
    env.write("set_event_pid", str(pid))
    assert env.records(env.fire(pid)) == 1
    env.write("set_event_pid", "", append=False)        # no list: every task again
    assert env.records(env.fire()) == 1


def test_set_event_notrace_pid(env: Env) -> None:
    env.write(f"events/{env.event}/enable", "1")
    pid = next(env.pids)
    env.write("set_event_notrace_pid", str(pid), append=False)
    assert env.records(env.fire(pid)) == 0
    assert env.records(env.fire()) == 1


def test_soft_disable(env: Env) -> None:
    """An enable_event trigger enables the event in soft mode, soft-disabled: nothing is
    recorded; ``echo 1 > enable`` records; ``echo 0 > enable`` with the trigger still
    there goes back to soft-disabled."""
    env.write(TRIGGER_HOST, f"enable_event:{env.event.replace('/', ':')}")
    assert read_file(env.root, f"events/{env.event}/enable") == b"0*\n"
    assert env.records(env.fire()) == 0
    env.write(f"events/{env.event}/enable", "1")
    assert env.records(env.fire()) == 1
    env.write(f"events/{env.event}/enable", "0")
    assert read_file(env.root, f"events/{env.event}/enable") == b"0*\n"
    assert env.records(env.fire()) == 0


def test_filter(env: Env) -> None:
    env.write(f"events/{env.event}/enable", "1")
    env.write(f"events/{env.event}/filter", env.reject)
    assert env.records(env.fire()) == 0
    env.write(f"events/{env.event}/filter", env.keep)
    assert env.records(env.fire()) == 1
    env.write(f"events/{env.event}/filter", "0")
    assert env.records(env.fire()) == 1


def test_pid_filter_in_an_instance_only() -> None:
    """The pid lists are per instance: a kprobe event enabled in two instances records in
    the one whose set_event_pid lets the task through, not in the other."""
    env = Env("p")
    assert env.root.lookup("instances").mkdir("other") is not None
    env.write("events/kprobes/kp/enable", "1")
    env.write("instances/other/events/kprobes/kp/enable", "1")
    env.write("instances/other/set_event_pid", "1", append=False)
    pid = env.fire()
    assert env.records(pid) == 1
    text = read_file(env.root, "instances/other/trace").decode()
    assert f"-{pid} " not in text


@pytest.mark.parametrize(("trigger", "enable"), [("traceon", False),
                                                 ("traceon if count == 100", True)])
def test_traceon_trigger_while_recording_is_off(trigger: str, enable: bool) -> None:
    """With tracing off the ring buffer takes no record, yet the triggers run: one
    without a filter before the record (trace_trigger_soft_disabled), even on an event
    only soft-enabled by it; one with a filter on the record the reserve put in the
    temp_buffer.  Either turns tracing back on; the record itself is not in the trace."""
    env = Env("p")
    if enable:
        env.write("events/kprobes/kp/enable", "1")
    env.write("events/kprobes/kp/trigger", trigger)
    env.write("tracing_on", "0")
    pid = env.fire()
    assert read_file(env.root, "tracing_on") == b"1\n"
    assert env.records(pid) == 0


def test_conditional_trigger_sees_the_record_and_traceoff_runs_after_it() -> None:
    """A trigger with a filter runs at commit on the record; ``traceoff`` is a post
    trigger (EVENT_CMD_FL_POST_TRIGGER): the record that fired it is written first."""
    env = Env("p")
    env.write("events/kprobes/kp/enable", "1")
    env.write("events/kprobes/kp/trigger", "traceoff if count == 1")
    assert env.records(env.fire()) == 1
    assert read_file(env.root, "tracing_on") == b"1\n"
    env.write("events/kprobes/kp/trigger", "!traceoff")
    env.write("events/kprobes/kp/trigger", "traceoff if count == 100")
    pid = env.fire()
    assert read_file(env.root, "tracing_on") == b"0\n"
    assert env.records(pid) == 1

