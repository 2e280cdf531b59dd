"""Issue 20, the timers/interrupts family: what 6.12 fires for a traced program's sleeps,
interval timers, cross-CPU wakeups, idle CPUs, context switches, rseq and the FPU
(kernel/workload: hrtimer, itimer, tick, tmigr, smp, rcu, entry, rseq, fpu), fed as
tracer records through ``kernel.workload.traced``; and one real program under the real
tracer."""

from __future__ import annotations

import re
import struct
from pathlib import Path

from test_traced_tasks import NR, A, B, Env, args, pipe_wakeup, sysprobe, trace_program, two_processes  # noqa: F401 (a fixture)

from tracefs_sim.kernel import Kernel
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import read_file, write_file

NR_SETITIMER, NR_RSEQ = 38, 334
FAMILY = ("timer", "irq_vectors", "ipi", "csd", "rcu", "rseq", "x86_fpu", "timer_migration",
          "power/cpu_idle", "sched/sched_switch", "sched/sched_waking", "sched/sched_wakeup",
          "signal/signal_generate")


def events(env: Env) -> list[tuple[float, str, int, str, str]]:
    """(us, comm-pid, cpu, event, fields) of every record."""
    out = []
    for ln in env.lines(keep="all"):
        m = re.match(r"\s*(\S+) (\S+) \[(\d+)\] \S+ (\w+)(?:: ?|\()(.*)", ln)
        assert m, ln
        out.append((float(m.group(1)), m.group(2), int(m.group(3)), m.group(4), m.group(5)))
    return out


def fields(text: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=([^\s,]+)", text))


def sleep(env: Env, cpu: int, tid: int, at: float, ns: int, end: float) -> None:
    env.tr.sys_enter(env.at(at), cpu, tid, tid, NR["nanosleep"], args(0x403200),
                     {0: struct.pack("<qq", ns // 1_000_000_000, ns % 1_000_000_000)})
    env.tr.sys_exit(env.at(end), cpu, tid, tid, NR["nanosleep"], 0, {}, ns, 1)


def test_a_long_sleep_arms_its_hrtimer_and_the_idle_cpu_stops_its_tick() -> None:
    """nanosleep: hrtimer_init/hrtimer_start (hrtimer_wakeup, REL, 50 us slack) in the
    task; the CPU idles: at the first tick in idle the timer bases go idle, the tick
    stops, the hierarchy learns the CPU went idle; the sleeper's timer expires in the
    next timer interrupt and wakes it there; leaving idle restarts the tick."""
    env = Env(*FAMILY)
    env.tr.attached(env.at(0), 1, A, A, "sleeper")
    sleep(env, 1, A, 100, 30_000_000, 30_180)
    ev = [e for e in events(env) if e[2] == 1]
    names = [e[3] for e in ev]
    init = next(e for e in ev if e[3] == "hrtimer_init")
    start = next(e for e in ev if e[3] == "hrtimer_start" and "hrtimer_wakeup" in e[4])
    h = fields(init[4])["hrtimer"]
    assert init[1] == start[1] == "sleeper-1000" and fields(init[4])["mode"] == "REL"
    f = fields(start[4])
    assert f["hrtimer"] == h and int(f["expires"]) == int(f["softexpires"]) + 50_000
    assert 30_000_000 <= int(f["softexpires"]) - env.at(100) < 30_002_000
    entry = next(e for e in ev if e[3] == "hrtimer_expire_entry" and fields(e[4])["hrtimer"] == h)
    assert fields(entry[4])["function"] == "hrtimer_wakeup" and entry[1] == "<idle>-0"
    assert int(fields(entry[4])["now"]) >= int(f["expires"])
    stop = names.index("tick_stop")
    assert "success=1" in ev[stop][4]
    assert any(e[3] == "timer_base_idle" and e[4] == "is_idle=1 cpu=1" for e in ev[:stop])
    assert any(e[3] == "tmigr_cpu_idle" for e in ev[:stop + 3])
    woke = names.index("hrtimer_expire_entry", stop)
    assert names[woke:].index("sched_wakeup") < names[woke:].index("hrtimer_expire_exit")
    # leaving idle: the bases active again, the tick restarted, then the switch
    back = names.index("sched_switch", woke)
    assert any(e[3] == "timer_base_idle" and "is_idle=0" in e[4] for e in ev[woke:back])
    assert any(e[3] == "tmigr_cpu_active" for e in ev[woke:back])
    assert any(e[3] == "hrtimer_start" and "tick_nohz_handler" in e[4] for e in ev[woke:back])


def test_setitimer_arms_the_real_timer_and_sigalrm_comes_from_its_expiry() -> None:
    """setitimer(ITIMER_REAL, 5 ms): hrtimer_start of signal->real_timer (it_real_fn),
    itimer_state with the observed value (expires 0 for ITIMER_REAL); at expiry
    itimer_expire and SIGALRM generated in the hrtimer interrupt; no itimer event for a
    process that made no setitimer."""
    env = Env(*FAMILY, "syscalls/sys_enter_setitimer")
    tr = env.tr
    tr.attached(env.at(0), 1, A, A, "alarmed")
    tr.sys_enter(env.at(100), 1, A, A, NR_SETITIMER, args(0, 0x7000, 0), {1: struct.pack("<qqqq", 0, 0, 0, 5000)})
    tr.sys_exit(env.at(110), 1, A, A, NR_SETITIMER, 0, {}, 0, 0)
    tr.sys_enter(env.at(120), 1, A, A, NR["read"], args(0, 0x5000, 64), {})
    tr.sys_exit(env.at(5200), 1, A, A, NR["read"], -512, {}, 5_000_000, 1)
    tr.signal(env.at(5205), 1, A, A, 14, 0, 0x80, 0, 0)
    env.tick(20_000)
    ev = events(env)
    state = next(e for e in ev if e[3] == "itimer_state")
    assert state[4] == "which=0 expires=0 it_value=0.005000 it_interval=0.000000"
    start = next(e for e in ev if e[3] == "hrtimer_start" and "it_real_fn" in e[4])
    h = fields(start[4])["hrtimer"]
    assert start[0] <= state[0] and int(fields(start[4])["softexpires"]) - env.at(100) in range(5_000_000, 5_002_000)
    exp = next(e for e in ev if e[3] == "itimer_expire")
    entry = next(e for e in ev if e[3] == "hrtimer_expire_entry" and fields(e[4])["hrtimer"] == h)
    assert exp[4].startswith("which=0 pid=1000 now=") and entry[0] <= exp[0]
    sig = next(e for e in ev if e[3] == "signal_generate" and "sig=14 " in e[4])
    assert sig[0] >= exp[0] and "pid=1000" in sig[4]

    quiet = Env(*FAMILY)
    quiet.tr.attached(quiet.at(0), 1, A, A, "plain")
    sleep(quiet, 1, A, 100, 1_000_000, 1_180)
    assert not [e for e in events(quiet) if e[3].startswith("itimer")]


def test_a_wakeup_onto_an_idle_cpu_goes_through_its_wake_list_ipi() -> None:
    """A's pipe write wakes B asleep on idle CPU 0: csd_queue_cpu (sched_ttwu_pending,
    the task's wake_entry) and ipi_send_cpu in A's context; on CPU 0 the
    call-function-single IPI runs it between csd_function_entry/exit with the same csd;
    a fork child put on the idle CPU gets a reschedule IPI there."""
    env = Env(*FAMILY, "sched/sched_wakeup_new")
    two_processes(env)
    pipe_wakeup(env)
    ev = events(env)
    # the fork: wake_up_new_task() on idle CPU 0, a reschedule IPI
    new = next(i for i, e in enumerate(ev) if e[3] == "sched_wakeup_new")
    send = next(e for e in ev[new:] if e[3] == "ipi_send_cpu")
    assert send[1] == "a-1000" and send[4].startswith("cpu=0 callsite=wakeup_preempt+") and \
        send[4].endswith("callback=0x0")
    resched = [e for e in ev if e[3].startswith("reschedule_")]
    assert [(e[2], e[3], e[4]) for e in resched] == [(0, "reschedule_entry", "vector=253"),
                                                    (0, "reschedule_exit", "vector=253")]
    # the pipe write's wakeup
    w = next(i for i, e in enumerate(ev) if e[3] == "sched_waking" and e[0] >= 500)
    q, s = ev[w + 1], ev[w + 2]
    assert (q[1], q[3], s[3]) == ("a-1000", "csd_queue_cpu", "ipi_send_cpu")
    assert q[4].startswith("cpu=0 callsite=ttwu_queue_wakelist+") and "func=sched_ttwu_pending" in q[4]
    assert "callback=generic_smp_call_function_single_interrupt+0x0/" in s[4]
    csd = fields(q[4])["csd"]
    on0 = [e for e in ev[w:] if e[2] == 0]
    names = [e[3] for e in on0]
    i = names.index("call_function_single_entry")
    assert names[i:i + 4] == ["call_function_single_entry", "csd_function_entry", "sched_wakeup",
                              "csd_function_exit"]
    assert fields(on0[i + 1][4]) == {"func": "sched_ttwu_pending", "csd": csd}
    assert on0[i][4] == "vector=251" and on0[i][1] == "<idle>-0"


def test_rseq_fpu_and_rcu_follow_the_tasks_switches() -> None:
    """A registered rseq area is updated on the way back to user space after a switch
    (cpu_id the task's CPU), never for a task that did not register; the FPU registers
    are saved at the switch-out and loaded at the return to user space, the same
    &thread.fpu; fork copies the parent's state to the child's; every context switch
    is bracketed by rcu_utilization."""
    env = Env(*FAMILY, "syscalls/sys_enter_rseq")
    tr = env.tr
    tr.attached(env.at(0), 1, A, A, "sh")
    tr.sys_enter(env.at(10), 1, A, A, NR_RSEQ, args(0x7F00, 32, 0, 0x53053053), {})
    tr.sys_exit(env.at(12), 1, A, A, NR_RSEQ, 0, {}, 0, 0)
    sleep(env, 1, A, 100, 1_000_000, 1_180)
    tr.sys_enter(env.at(1300), 1, A, A, NR["fork"], args(), {})
    tr.new_task(env.at(1350), 1, A, B, B, 1, 17, "sh", 0)
    tr.sys_exit(env.at(1370), 1, A, A, NR["fork"], B, {}, 0, 0)
    ev = events(env)
    upd = [e for e in ev if e[3] == "rseq_update"]
    # after the registration, after the sleep's switch back; the child inherits it
    assert [(e[1], e[4]) for e in upd] == [("sh-1000", "cpu_id=1 node_id=0 mm_cid=0"),
                                           ("sh-1000", "cpu_id=1 node_id=0 mm_cid=0"),
                                           ("sh-2000", "cpu_id=0 node_id=0 mm_cid=0")]
    fpu = [(e[1], e[3], re.search(r"x86/fpu: (\w+) load: (\d)", e[4]).groups()) for e in ev
           if e[3].startswith("x86_fpu_")]
    mine = {f[2][0] for f in fpu if f[0] == "sh-1000" and f[1] == "x86_fpu_regs_deactivated"}
    assert len(mine) == 1
    parent = mine.pop()
    assert ("sh-1000", "x86_fpu_regs_activated", (parent, "1")) in fpu
    src = next(f for f in fpu if f[1] == "x86_fpu_copy_src")
    dst = next(f for f in fpu if f[1] == "x86_fpu_copy_dst")
    assert src[2][0] == parent and dst[2][0] != parent
    assert ("sh-2000", "x86_fpu_regs_activated", (dst[2][0], "1")) in fpu
    switches = [i for i, e in enumerate(ev) if e[3] == "sched_switch"]
    for i in switches:
        cpu = ev[i][2]
        before = [e[4] for e in ev[:i] if e[2] == cpu and e[3] == "rcu_utilization"][-2:]
        assert before == ["Start context switch", "End context switch"]


def test_nothing_fires_when_nothing_is_enabled() -> None:
    """With no event enabled the machine does not run (its state goes stale) and the
    family's paths record nothing; enabling an event afterwards starts it again from
    what runs now."""
    env = Env()
    tr = env.tr
    tr.attached(env.at(0), 1, A, A, "sh")
    sleep(env, 1, A, 100, 30_000_000, 30_180)
    tr.sys_enter(env.at(30_300), 1, A, A, NR_SETITIMER, args(0, 0x7000, 0), {1: struct.pack("<qqqq", 0, 0, 0, 5000)})
    tr.sys_exit(env.at(30_310), 1, A, A, NR_SETITIMER, 0, {}, 0, 0)
    env.tick(60_000)
    wl = env.k.workload
    assert not env.lines(keep="all") and wl.background.stale
    env.write("events/timer/hrtimer_start/enable", "1")
    sleep(env, 1, A, 70_000, 1_000_000, 71_180)
    assert not wl.background.stale
    assert [e[3] for e in events(env)][:1] == ["hrtimer_start"]


def test_a_real_program_sleeps_on_its_hrtimer(sysprobe: tuple[Path, Path], tmp_path: Path) -> None:  # noqa: F811
    """The helper's sequence under the real tracer: its nanosleep arms an hrtimer_wakeup
    timer in its own context that expires and wakes it; its fork copies its FPU state;
    its exit drops it."""
    tracer, helper = sysprobe
    k = Kernel(nr_cpus=2)
    root = build_tree(k)
    for e in ("timer/hrtimer_init", "timer/hrtimer_start", "timer/hrtimer_expire_entry", "x86_fpu",
              "syscalls/sys_enter_kill"):
        write_file(root, f"events/{e}/enable", "1")
    trace_program(k, tracer, [str(helper), "seq", str(tmp_path)])
    k.workload.catch_up_to(k.boot_clock.ns() + 50_000_000)
    recs = []
    for ln in read_file(root, "trace").decode().splitlines():
        m = re.match(r"\s*\S+-(\d+)\s+\[\d+\]\s+\S+\s+\d+\.\d+: (\w+)(?:: |\()(.*)", ln)
        if m:
            recs.append((int(m.group(1)), m.group(2), m.group(3)))
    pid = next(p for p, name, text in recs if name == "sys_kill" and text.startswith(f"pid: {p:x},"))
    starts = [fields(t) for p, n, t in recs if p == pid and n == "hrtimer_start" and "hrtimer_wakeup" in t]
    assert len(starts) == 1 and starts[0]["mode"] == "REL"
    h = starts[0]["hrtimer"]
    assert any(p == pid and n == "hrtimer_init" and fields(t)["hrtimer"] == h for p, n, t in recs)
    assert any(n == "hrtimer_expire_entry" and fields(t)["hrtimer"] == h for _, n, t in recs)
    assert [n for p, n, _ in recs if p == pid and n.startswith("x86_fpu_copy")] == \
        ["x86_fpu_copy_src", "x86_fpu_copy_dst"]
    assert any(n == "x86_fpu_dropped" for _, n, _ in recs)


def test_a_fork_puts_the_cpu_on_the_root_cgroups_rstat_list_once() -> None:
    """dup_mm()'s page tables update the root memcg's stats: the per-CPU rstat fast path
    (locked/unlock) the first time on that CPU until a flush; a thread's clone (CLONE_VM)
    makes no new mm."""
    env = Env("cgroup")
    tr = env.tr
    tr.attached(env.at(0), 1, A, A, "sh")
    tr.sys_enter(env.at(10), 1, A, A, NR["clone"], args(0x3D0F00, 0x7F0000, 0x7F1000, 0x7F2000, 0x7F3000), {})
    tr.new_task(env.at(20), 1, A, 1002, A, 3, 0x3D0F00, "sh", 0)
    tr.sys_exit(env.at(25), 1, A, A, NR["clone"], 1002, {}, 0, 0)
    assert not events(env)
    for i, child in enumerate((B, B + 1)):
        at = 100 + 100 * i
        tr.sys_enter(env.at(at), 1, A, A, NR["fork"], args(), {})
        tr.new_task(env.at(at + 10), 1, A, child, child, 1, 17, "sh", 0)
        tr.sys_exit(env.at(at + 20), 1, A, A, NR["fork"], child, {}, 0, 0)
    assert [(e[1], e[2], e[3], e[4]) for e in events(env)] == [
        ("sh-1000", 1, "cgroup_rstat_cpu_locked_fastpath", "root=0 id=1 level=0 cpu=1 lock contended:0"),
        ("sh-1000", 1, "cgroup_rstat_cpu_unlock_fastpath", "root=0 id=1 level=0 cpu=1 lock contended:0")]
