"""The workload's tracepoints: values in each event's field order, the places and
contexts the real kernel fires them from, host process mirroring, and the packer's
one-struct fast path."""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time

import pytest

from tracefs_sim.kernel import Kernel
from tracefs_sim.kernel.trace_events import Tracepoint
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import read_file, write_file

# the events the workload must fire (issue 6)
EXPECTED = {
    "sched_switch", "sched_wakeup", "sched_waking", "sched_wakeup_new", "sched_process_fork",
    "sched_process_exec", "sched_process_exit", "sched_process_free", "sched_migrate_task",
    "sched_stat_runtime", "sys_enter", "sys_exit", "sys_enter_openat", "sys_exit_openat",
    "sys_enter_read", "sys_enter_write", "sys_enter_close", "sys_enter_newfstatat",
    "irq_handler_entry", "irq_handler_exit", "softirq_entry", "softirq_exit", "softirq_raise",
    "timer_start", "timer_expire_entry", "timer_expire_exit", "timer_cancel", "hrtimer_start",
    "hrtimer_expire_entry", "hrtimer_expire_exit", "workqueue_queue_work",
    "workqueue_activate_work", "workqueue_execute_start", "workqueue_execute_end", "kmalloc",
    "kfree", "kmem_cache_alloc", "kmem_cache_free", "mm_page_alloc", "signal_generate",
    "signal_deliver", "task_newtask", "task_rename", "cpu_idle", "local_timer_entry"}
SYSTEMS = ("sched", "raw_syscalls", "syscalls", "irq", "timer", "workqueue", "kmem", "signal",
           "task", "power", "irq_vectors")


@pytest.fixture
def kt():
    k = Kernel(nr_cpus=2, seed=3)
    return k, build_tree(k)


def enable(root, systems=SYSTEMS) -> None:
    for s in systems:
        write_file(root, f"events/{s}/enable", "1")


def run_ticks(k: Kernel, n: int) -> None:
    for _ in range(n * 4):   # deterministic: one tick every fourth catch_up
        k.workload.catch_up()


def body(root, path: str = "trace") -> list[str]:
    return [ln for ln in read_file(root, path).decode().splitlines() if not ln.startswith("#")]


def test_values_match_field_order_and_every_event_prints(kt, monkeypatch) -> None:
    k, root = kt
    fired: dict[str, int] = {}
    orig = Tracepoint.fire

    def fire(self, *values):
        call = self.call
        assert call is not None
        assert len(values) == len(call.fields), (self.name, values)
        for f, v in zip(call.fields, values, strict=True):
            if f.is_dynamic or (f.count and f.is_char):
                assert isinstance(v, (str, bytes)), (self.name, f.name, v)
            elif not f.count:
                assert isinstance(v, int), (self.name, f.name, v)
        fired[self.name] = fired.get(self.name, 0) + 1
        return orig(self, *values)

    orig_defaults = Tracepoint.fire_defaults

    def fire_defaults(self, *values):
        # the syscalls:* events give their leading fields; the rest take the defaults
        call = self.call
        assert call is not None and len(values) <= len(call.fields), (self.name, values)
        fired[self.name] = fired.get(self.name, 0) + 1
        return orig_defaults(self, *values)

    monkeypatch.setattr(Tracepoint, "fire", fire)
    monkeypatch.setattr(Tracepoint, "fire_defaults", fire_defaults)
    enable(root)
    write_file(root, "buffer_size_kb", "8192")
    run_ticks(k, 400)
    for op in ("openat", "read", "write", "close"):
        k.syscall_enter(4321, "cat", 1, op=op, name="trace", count=100)
        k.syscall_exit()
    assert EXPECTED <= set(fired), sorted(EXPECTED - set(fired))
    lines = body(root)
    names = {m[1] for ln in lines if (m := re.search(r"\] \S{5} +[\d.]+: (\w+): ", ln))}
    assert EXPECTED - {"sys_enter_openat", "sys_exit_openat", "sys_enter_read", "sys_enter_write",
                       "sys_enter_close", "sys_enter_newfstatat"} <= names
    # no event printed with the fallback field=value form (its print fmt compiled)
    for name in ("mm_page_alloc", "hrtimer_start", "timer_start", "kmalloc", "workqueue_queue_work"):
        ln = next(x for x in lines if f" {name}: " in x)
        assert "page=" in ln or name != "mm_page_alloc"
        assert "mode=ABS" in ln or name != "hrtimer_start"
        assert "gfp_flags=GFP_" in ln or name != "kmalloc"
    assert any("function=tick_nohz_handler" in ln for ln in lines)
    assert any("workqueue=mm_percpu_wq" in ln or "workqueue=events_unbound" in ln for ln in lines)


def test_contexts_and_states(kt) -> None:
    k, root = kt
    enable(root, ("sched", "irq_vectors", "irq"))
    run_ticks(k, 300)
    lines = body(root)
    switches = [ln for ln in lines if "sched_switch:" in ln]
    assert switches and all(" d..2. " in ln for ln in switches)
    assert any("prev_comm=rcu_preempt" in ln and "prev_state=I " in ln for ln in switches)
    assert any("prev_state=Z " in ln for ln in switches)      # an exiting child
    assert all("prev_state=R " in ln for ln in switches if "prev_pid=0 " in ln)
    assert all(re.search(r"d\.h.\. ", ln) for ln in lines if "local_timer_entry:" in ln)
    assert all(re.search(r"\.\.s.\. ", ln) for ln in lines if "softirq_entry:" in ln)
    wakeups = [ln for ln in lines if "sched_wakeup:" in ln and "<idle>" in ln]
    assert wakeups and all(" dN" in ln for ln in wakeups)    # the idle CPU must reschedule


def test_child_lifecycle_order(kt) -> None:
    k, root = kt
    enable(root, ("sched", "task"))
    wl = k.workload
    wl.shell.run_child(0)
    ev = [re.search(r": (\w+): ", ln)[1] for ln in body(root)]
    order = ["sched_waking", "sched_wakeup", "sched_switch", "task_newtask", "sched_process_fork",
             "sched_wakeup_new", "sched_process_wait", "sched_switch", "sched_prepare_exec",
             "task_rename", "sched_process_exec", "sched_process_exit", "sched_waking",
             "sched_wakeup", "sched_switch", "sched_process_free", "sched_switch"]
    it = iter(e for e in ev if e != "sched_stat_runtime")
    assert all(any(e == want for e in it) for want in order), ev


def test_host_spawn_exec_exit_follows_fork_pid_lists(kt) -> None:
    k, root = kt
    wl = k.workload
    enable(root, ("sched", "task"))
    write_file(root, "options/event-fork", "1")
    write_file(root, "set_event_pid", "5000")
    wl.hostprocs.host_spawn(5000, "bash", 5001, "cat", 1, "/usr/bin/cat", alive=True)
    assert read_file(root, "set_event_pid").decode().split() == ["5000", "5001"]
    wl.hostprocs.host_spawn(5000, "bash", 5002, "bash", 0, alive=False)   # a subshell, gone already
    wl.hostprocs.host_exit(5001)
    assert read_file(root, "set_event_pid").decode().split() == ["5000"]
    text = "\n".join(body(root))
    assert "sched_process_fork: comm=bash pid=5000 child_comm=bash child_pid=5001" in text
    assert "sched_process_exec: filename=/usr/bin/cat pid=5001 old_pid=5001" in text
    assert "task_rename: pid=5001 oldcomm=bash newcomm=cat" in text
    assert "sched_process_exit: comm=cat pid=5001" in text
    assert "prev_comm=cat prev_pid=5001 prev_prio=120 prev_state=Z" in text
    assert "sched_process_free: comm=bash pid=5002" in text
    assert "task_newtask: pid=5002 comm=bash clone_flags=1200011" in text


def test_host_spawn_renamed_without_exec_is_a_prctl(kt) -> None:
    """perf's child names itself perf-exec (prctl(PR_SET_NAME)) before it execs the
    command: a rename inside sys_prctl, no exec until the command's."""
    k, root = kt
    wl = k.workload
    enable(root, ("sched", "task", "syscalls/sys_enter_prctl", "syscalls/sys_exit_prctl"))
    write_file(root, "set_graph_function", "__x64_sys_prctl")
    write_file(root, "current_tracer", "function_graph")
    write_file(root, "trace_options", "nofuncgraph-irqs")
    wl.hostprocs.host_spawn(5000, "perf", 5001, "perf-exec", 1, "/usr/bin/perf", execd=False)
    wl.hostprocs.host_rename(5001, "perf-exec")          # its comm already: nothing more
    wl.hostprocs.host_exec(5001, "cat", "/usr/bin/cat")
    text = "\n".join(body(root))
    assert "sched_process_exec: filename=/usr/bin/perf" not in text
    assert "filename=/usr/bin/perf-exec" not in text
    assert text.count("task_rename: pid=5001 oldcomm=perf newcomm=perf-exec") == 1
    assert "sched_process_exec: filename=/usr/bin/cat pid=5001 old_pid=5001" in text
    assert "sys_prctl(option: f, arg2: 55d1e7b6a4c8, arg3: 0, arg4: 0, arg5: 0)" in text
    assert "sys_prctl -> 0x0" in text
    graph = [ln.split("|", 1)[1].rstrip() for ln in body(root) if "|" in ln]
    start = graph.index("  __x64_sys_prctl() {")
    assert graph[start:start + 13] == [
        "  __x64_sys_prctl() {",
        "    security_task_prctl() {",
        "      cap_task_prctl();",
        "      yama_task_prctl();",
        "    }",
        "    __set_task_comm() {",
        "      _raw_spin_lock();",
        "      /* task_rename: pid=5001 oldcomm=perf newcomm=perf-exec oom_score_adj=0 */",
        "      _raw_spin_unlock();",
        "      perf_event_comm();",
        "    }",
        "    proc_comm_connector();",
        "  }"], graph[start:start + 14]


def test_requests_switch_tasks_in_and_out(kt) -> None:
    k, root = kt
    enable(root, ("sched",))
    k.syscall_enter(6000, "sh", 0, op="read", count=10)
    k.syscall_exit()
    k.syscall_enter(6000, "sh", 0, op="read", count=10)   # still running there: no switch
    k.syscall_exit()
    k.syscall_enter(6001, "cat", 0, op="read", count=10)  # sh blocked, cat runs
    k.syscall_exit()
    k.syscall_enter(6000, "sh", 0, op="read", count=10)   # sh is woken again
    k.syscall_exit()
    # (background ticks interleave: look at the switches of the two requesters)
    ev = []
    for ln in body(root):
        if m := re.search(r"sched_switch: prev_comm=(\S+) prev_pid=(\d+) .*prev_state=(\S+) ==> "
                          r"next_comm=(\S+) next_pid=(\d+)", ln):
            if {m[2], m[5]} & {"6000", "6001"}:
                ev.append(("switch", m[1], m[3], m[4]))
        elif "sched_wakeup: comm=sh pid=6000" in ln:
            ev.append(("wakeup", "sh", "", ""))
    into = [e[3] for e in ev if e[0] == "switch" and e[3] in ("sh", "cat")]
    assert into[0] == "sh" and into.count("sh") >= 2 and "cat" in into
    sh_out = next(i for i, e in enumerate(ev) if e[0] == "switch" and e[1] == "sh")
    assert ev[sh_out][2] == "S"                        # sh blocked for cat
    cat_in = next(i for i, e in enumerate(ev) if e[0] == "switch" and e[3] == "cat")
    assert sh_out < cat_in
    woken = next(i for i, e in enumerate(ev) if e[0] == "wakeup")
    assert woken > cat_in and any(e[3] == "sh" for e in ev[woken:])


def test_packer_fast_path_matches_field_packers(kt) -> None:
    k, _ = kt
    rng = random.Random(7)
    n = 0
    for call in k.events.calls:
        pk = call.packer
        if pk.fast is None:
            continue
        n += 1
        for _ in range(3):
            vals = []
            for f in pk.fields:
                if f.count:
                    vals.append(rng.choice(["", "x" * 40, "kworker/1:1", None]))
                else:
                    bits = f.size * 8
                    vals.append(rng.choice([0, -1, (1 << bits) - 1, rng.getrandbits(bits), 1 << 70]))
            assert pk.pack(tuple(vals)) == pk.pack_fields(tuple(vals)), call.name
    assert n > 1000


@pytest.mark.skipif(sys.platform != "linux", reason="needs /proc")
def test_host_procs_reports_forks_and_exits() -> None:
    from tracefs_sim.hostprocs import HostProcs

    k = Kernel(nr_cpus=2)
    root = build_tree(k)
    hp = HostProcs()
    if not hp.enabled:
        pytest.skip("no /proc/sys/kernel/ns_last_pid")
    write_file(root, "set_event", "sched:sched_process_fork sched:sched_process_exit")
    gone = subprocess.run(["true"], check=True)
    assert gone.returncode == 0
    live = subprocess.Popen(["sleep", "5"])
    for _ in range(200):   # until it has exec'd
        with open(f"/proc/{live.pid}/comm") as f:
            if f.read().strip() == "sleep":
                break
        time.sleep(0.005)
    try:
        hp.sync(k, live.pid, "sleep", lambda pid: 0)
        text = read_file(root, "trace").decode()
        assert f"child_comm=sleep child_pid={live.pid}" in text or \
            f"child_pid={live.pid}" in text, text[-2000:]
    finally:
        live.kill()
        live.wait()
    time.sleep(0.05)
    hp.next_check = 0
    hp.sync(k, 1, "", lambda pid: 0)
    assert re.search(rf"sched_process_exit: comm=\S+ pid={live.pid} ", read_file(root, "trace").decode())


def test_a_requester_that_exec_d_runs_its_exec_first(kt) -> None:
    """A deterministic mount does not watch host forks: a known requester whose comm
    changed between requests exec'd (trace-cmd's child becoming the recorded command):
    sched_process_exec and ld.so's reads of it run before its request."""
    k, root = kt
    k.workload.hostprocs.synth_host_start = True
    write_file(root, "events/sched/sched_process_exec/enable", "1")
    write_file(root, "events/syscalls/sys_enter_read/enable", "1")
    k.syscall_enter(4321, "trace-cmd", 1, op="read", name="set_ftrace_pid", count=8192)
    k.syscall_exit()
    write_file(root, "trace", "")
    k.syscall_enter(4321, "sleep", 1, op="openat", name="ld.so.cache", path="/etc/ld.so.cache")
    k.syscall_exit()
    lines = body(root)
    execs = [ln for ln in lines if "sched_process_exec:" in ln]
    assert len(execs) == 1 and "filename=/usr/bin/sleep pid=4321" in execs[0], lines
    assert execs[0].split()[0] == "sleep-4321"
    reads = [ln for ln in lines if "sys_read(" in ln]
    assert reads and all(ln.split()[0] == "sleep-4321" for ln in reads), lines
    # the same comm again: no second exec
    k.syscall_enter(4321, "sleep", 1, op="openat", name="libc.so.6", path="/lib/libc.so.6")
    k.syscall_exit()
    assert sum("sched_process_exec:" in ln for ln in body(root)) == 1


def test_disabled_call_sites_leave_no_mark(kt, monkeypatch) -> None:
    """With no ftrace site patched and no int3 probe armed a call tree is skipped whole,
    and a syscall's frames are still pushed (a stack trace inside shows them)."""
    k, _root = kt
    wl, ft = k.workload, k.ftrace
    entered: list[int] = []
    monkeypatch.setattr(ft, "func_entry", lambda idx, pip, regs: entered.append(idx))
    assert not ft.nr_active
    wl.sites.call(("vfs_read", ("rw_verify_area", "security_file_permission")), "ksys_read")
    assert not entered and not wl.sites.stacks.get(id(k.sched.current))
    frames = wl.sites.enter_chain(("x64_sys_call", "__x64_sys_read", "ksys_read"))
    assert [name for _, name, _ in frames] == ["x64_sys_call", "__x64_sys_read", "ksys_read"]
    names = [k.kallsyms.lookup_addr(a)[0] for a in wl.sites.current_stack()]
    assert names == ["ksys_read", "do_syscall_64", "entry_SYSCALL_64_after_hwframe"]
    wl.sites.leave_chain(frames)
    assert not wl.sites.stacks.get(id(k.sched.current)) and not entered
