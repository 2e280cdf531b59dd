"""Host processes seen from a plain mount (the adapter scans /proc for them): their
forks, execs, sleeps, directory changes and exits become the kernel paths and events a
real kernel would have run for them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..trace_flags import ITER_EVENT_FORK, ITER_FUNC_FORK
from .defs import CLONE_FLAGS, CLONE_THREAD_FLAGS, HOST_RUNS_MAX, STATE_S

if TYPE_CHECKING:
    from ..sched import Task
    from . import Workload


class HostProcs:
    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.parent_of: dict[int, int] = {}        # host pid -> parent pid
        self.seen: set[int] = {wl.shell.task.pid}  # host pids whose start is accounted for
        # the mount of a deterministic kernel sets this: its requesters' forks are not
        # watched, so a new requester's start is simulated (``spawn_requester``)
        self.synth_host_start = False

    def host_spawn(self, parent_pid: int, parent_comm: str, pid: int, comm: str, cpu: int,
                   exe: str | None = None, alive: bool = True, thread: bool = False,
                   execd: bool | None = None) -> None:
        """A host process forked ``pid`` (seen by the adapter): the clone in the
        parent; the exec of ``exe`` when it exec'd (``execd``; None: the adapter could
        not tell, so a comm other than the parent's says it did), else a comm of its own
        is a prctl(PR_SET_NAME); its exit when it is already gone."""
        wl = self.wl
        if not wl.enabled or wl.traced.owns(pid) or wl.traced.owns(parent_pid):
            return      # the tracer reports what traced tasks do
        k = wl.k
        sched = k.sched
        cpu %= k.nr_cpus
        self.seen.update((parent_pid, pid))
        wl.catch_up()
        saved = sched.cpu, sched.current
        parent = sched.task(parent_pid, parent_comm)
        pcpu = next((c for c, t in enumerate(wl.sched.host) if t is parent), cpu)
        wl.sched.run_task(pcpu, parent)
        child = sched.task(pid, parent.comm)
        child.tgid = parent.tgid if thread else pid
        self.parent_of[pid] = parent_pid
        wl.process.clone(pcpu, parent, child, CLONE_THREAD_FLAGS if thread else CLONE_FLAGS, target=cpu)
        wl.sched.host_tick[pcpu] = wl.ticks
        wl.sched.run_task(cpu, child)
        if execd is None:
            execd = comm != parent.comm
        if not thread and execd:
            wl.process.execve(child, comm, exe or f"/usr/bin/{comm}")
        elif not thread and comm != child.comm:
            wl.process.prctl_set_name(child, comm)
        elif comm != child.comm:
            child.comm = comm[:15]
        if not alive:
            self.host_exit(pid)
        sched.cpu, sched.current = saved

    def forks_observed(self) -> bool:
        """Would a host fork leave a mark now: something attached (kernel_clone probes,
        sched events) or a pid list that follows forks (event-fork, function-fork)?"""
        wl = self.wl
        if not wl.quiet():
            return True
        return any(tr.flags & (ITER_EVENT_FORK | ITER_FUNC_FORK) for tr in wl.k.trace.all_arrays())

    def sched_traced(self) -> bool:
        """Is any scheduler tracepoint a host task's wakeups would pass enabled?"""
        wl = self.wl
        return bool(wl.tp("sched_switch") or wl.tp("sched_waking") or wl.tp("sched_wakeup"))

    def host_run(self, pid: int, cpu: int, n: int) -> None:
        """Host task ``pid`` slept and was woken ``n`` times since last seen (its
        voluntary context switches): each time woken, switched in, and blocking again."""
        wl = self.wl
        task = wl.k.sched.tasks.get(pid)
        if task is None or not wl.enabled or wl.traced.owns(pid):
            return
        wl.catch_up()
        sched = wl.k.sched
        saved = sched.cpu, sched.current
        cpu %= wl.k.nr_cpus
        for _ in range(min(n, HOST_RUNS_MAX)):
            if task.pid not in wl.sched.asleep and wl.sched.host[cpu] is not task:
                wl.sched.asleep.add(task.pid)
            wl.sched.run_task(cpu, task)
            wl.sched.host_off(cpu, STATE_S)
        sched.cpu, sched.current = saved

    def chdir_traced(self) -> bool:
        wl = self.wl
        return bool(wl.tp("sys_enter_chdir") or wl.tp("sys_exit_chdir")
                    or wl.tp("sys_enter") or wl.tp("sys_exit"))

    def host_chdir(self, path: str) -> None:
        """The current (requesting) host task changed directory to ``path`` since its
        last request: its chdir(2), with the pathname in its user memory."""
        wl = self.wl
        if wl.traced.owns(wl.k.sched.current.pid):
            return      # the tracer reports a traced task's chdir
        wl.syscalls.end("chdir", wl.syscalls.begin("chdir", name=path.rsplit("/", 1)[-1],
                                                     path=path), 0)

    def host_exec(self, pid: int, comm: str, filename: str | None = None) -> None:
        """Host task ``pid`` exec'd ``filename`` (the program the host names; without
        one, the adapter knows only the new comm)."""
        self._as_host_task(pid, comm, lambda task: self.wl.process.execve(
            task, comm, filename or f"/usr/bin/{comm}"))

    def host_rename(self, pid: int, comm: str) -> None:
        """Host task ``pid`` renamed itself without an exec: prctl(PR_SET_NAME) (perf's
        child becomes ``perf-exec`` before it execs the command)."""
        self._as_host_task(pid, comm, lambda task: self.wl.process.prctl_set_name(task, comm))

    def _as_host_task(self, pid: int, comm: str, fn: Callable[[Task], None]) -> None:
        """Run ``fn`` as host task ``pid`` on its CPU, which it then leaves asleep; not
        for a task the kernel does not know, one whose comm is ``comm`` already, or one
        the tracer reports."""
        wl = self.wl
        task = wl.k.sched.tasks.get(pid)
        if task is None or not wl.enabled or task.comm == comm[:15] or wl.traced.owns(pid):
            return
        sched = wl.k.sched
        saved = sched.cpu, sched.current
        cpu = wl.sched.task_cpu.get(pid, 0) % wl.k.nr_cpus
        wl.sched.run_task(cpu, task)
        fn(task)
        wl.sched.host_off(cpu, STATE_S)
        sched.cpu, sched.current = saved

    def spawn_requester(self, cpu: int, task: Task) -> None:
        """A deterministic kernel does not watch the host's forks (they are not
        reproducible): a process whose first request this is was just started by the
        shell.  Its clone in the shell, the exec of its program and the dynamic loader
        run before the request, as they would have on the machine."""
        wl = self.wl
        comm = task.comm
        self.host_spawn(wl.shell.task.pid, wl.shell.task.comm, task.pid, comm, cpu, f"/usr/bin/{comm}")

    def host_exit(self, pid: int) -> None:
        """Host task ``pid`` exited (and was reaped): exit_group(), last switch, free."""
        wl = self.wl
        k = wl.k
        sched = k.sched
        task = sched.tasks.get(pid)
        if task is None or not wl.enabled or wl.traced.owns(pid):
            return
        saved = sched.cpu, sched.current
        cpu = next((c for c, t in enumerate(wl.sched.host) if t is task), None)
        if cpu is None:
            cpu = wl.sched.task_cpu.get(pid, 0) % k.nr_cpus
            wl.sched.run_task(cpu, task)
        sched.set_current(cpu, task)
        ppid = self.parent_of.pop(pid, None)
        parent = sched.tasks.get(ppid) if ppid is not None else None
        wl.process.exit_task(cpu, task, parent if parent is not None and parent.pid else None)
        if sched.curr[cpu] is not sched.idle[cpu]:
            wl.sched.host[cpu] = sched.curr[cpu]
            wl.sched.host_tick[cpu] = wl.ticks
        wl.process.exit(task)
        if saved[1] is not task:
            sched.cpu, sched.current = saved
        else:
            sched.set_current(cpu, sched.idle[cpu])

