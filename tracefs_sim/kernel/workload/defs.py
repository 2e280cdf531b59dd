"""Constants and code-path trees the simulated machine's parts share.

Code paths are trees of real function names of the reference kernel (a ``str`` is a leaf,
a tuple is ``(name, child, child, ...)``); names not traceable there are skipped at run
time.  Addresses are plausible x86-64 kernel addresses of the objects the tracepoints
report (per-CPU areas, kthread stacks, static work items).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..sched import (
    TRACE_FLAG_HARDIRQ,
    TRACE_FLAG_IRQS_OFF,
    TRACE_FLAG_NEED_RESCHED,
    TRACE_FLAG_PREEMPT_RESCHED,
)

Tree = tuple  # (name, child, child, ...) ; a str is a leaf


def tree_names(tree: Tree | str) -> Iterator[str]:
    """The function names of a code-path tree, each node before its children."""
    if isinstance(tree, str):
        yield tree
        return
    yield tree[0]
    for kid in tree[1:]:
        yield from tree_names(kid)

HOST_TICKS = 2  # a host task idle for this many ticks has blocked (it is switched out)

TIMER_IRQ: Tree = ("__sysvec_apic_timer_interrupt", ("hrtimer_interrupt", (
    "__hrtimer_run_queues", ("tick_nohz_handler", ("update_process_times", "account_process_tick",
                                                    "rcu_sched_clock_irq", "sched_tick"))),
    "_raw_spin_lock", "_raw_spin_unlock"))
SOFTIRQ: Tree = ("irq_exit_rcu", ("handle_softirqs", ("run_timer_softirq", "_raw_spin_lock",
                                                      "_raw_spin_unlock"), "rcu_core"))
WORK: Tree = ("process_one_work", ("vmstat_update", "mutex_lock", "mutex_unlock"), "kfree")
FORK: Tree = ("kernel_clone", ("copy_process", "kmem_cache_alloc_noprof", "_raw_spin_lock",
                                "_raw_spin_unlock"), "wake_up_new_task")
SCHEDULE: Tree = ("schedule", "pick_next_task_fair", "_raw_spin_lock", "_raw_spin_unlock")
WAKEUP: Tree = ("try_to_wake_up", "ttwu_do_activate", "_raw_spin_lock", "_raw_spin_unlock")

CLONE_FLAGS = 0x01200011  # CLONE_CHILD_CLEARTID | CLONE_CHILD_SETTID | SIGCHLD
CLONE_THREAD_FLAGS = 0x003D0F00  # pthread_create()

# sched_switch prev_state as __trace_sched_switch_state() reports it
STATE_RUNNING = 0
STATE_S = 0x1  # TASK_INTERRUPTIBLE
HOST_RUNS_MAX = 8   # wakeups replayed per host task and poll
STATE_D = 0x2  # TASK_UNINTERRUPTIBLE
STATE_Z = 0x20  # EXIT_ZOMBIE
STATE_I = 0x80  # TASK_IDLE (TASK_REPORT_IDLE)
STATE_PREEMPTED = 0x100  # TASK_REPORT_MAX: "R+"
STATE_STOPPED = 0x4  # __TASK_STOPPED: "T"
PWR_EVENT_EXIT = 0xFFFFFFFF
SIGCHLD = 17

# what the model knows of a traced host thread (kernel/workload/traced.py)
T_NEW = "new"             # made by a fork, not run yet
T_RUNNING = "running"     # on its CPU (user space, or a syscall that has not slept)
T_ASLEEP = "asleep"       # switched out waiting
T_STOPPED = "stopped"     # switched out in a group stop (T)
T_WOKEN = "woken"         # woken, not switched in yet
T_PREEMPTED = "preempted"  # switched out runnable (R+)
T_DEAD = "dead"           # exited (a zombie or released)
CLD_EXITED = 1
NR_CPUS = 8192  # CONFIG_NR_CPUS: req_cpu of work queued on WORK_CPU_UNBOUND

# gfp flags (include/linux/gfp_types.h, 6.12 bit numbers)
GFP_KERNEL = 0xCC0
GFP_ZERO = 0x100
GFP_COMP = 0x40000
GFP_ACCOUNT = 0x400000
GFP_KERNEL_ACCOUNT = GFP_KERNEL | GFP_ACCOUNT
GFP_HIGHUSER_MOVABLE = 0x100CCA
# timer flags (include/linux/timer.h)
TIMER_DEFERRABLE = 0x80000
TIMER_PINNED = 0x100000
TIMER_IRQSAFE = 0x200000
HRTIMER_MODE_ABS = 0
HRTIMER_MODE_ABS_PINNED_HARD = 10

PCPU_BASE = 0xFFFF88807DA00000  # per-CPU areas: base + cpu * PCPU_STRIDE
PCPU_STRIDE = 0x200000
TICK_SCHED_TIMER = 0x1E3C0  # &tick_cpu_sched.sched_timer within a per-CPU area
VMSTAT_WORK = 0x1D4A0  # &vmstat_work (a delayed_work: its timer is at +0x20)
MEMCG_FLUSH_WORK = 0xFFFFFFFFB3A4E6E0  # stats_flush_dwork (a static delayed_work)
KTHREAD_STACK = 0xFFFFC90000080000  # kthread stacks: base + pid * 0x4000
TIMER_VECTOR = 236  # LOCAL_TIMER_VECTOR
NET_IRQ, NET_IRQ_NAME = 26, "virtio0-input.0"

KTHREADS = (("rcu_preempt", 18, None), ("ksoftirqd/0", 17, 0), ("ksoftirqd/1", 27, 1),
            ("kworker/0:0", 9, 0), ("kworker/1:1", 46, 1), ("kworker/u8:3", 100, None),
            ("kcompactd0", 39, None))
CHILD_PROGRAMS = (("cat", "/usr/bin/cat"), ("ls", "/usr/bin/ls"), ("sleep", "/usr/bin/sleep"),
                  ("seq", "/usr/bin/seq"))
# slab caches of the syscall paths: (object size, slab size, gfp, accounted)
CACHES = {"names_cache": (4096, 4096, GFP_KERNEL, 0), "filp": (232, 256, GFP_KERNEL | GFP_ZERO, 1),
          "task_struct": (13248, 13312, GFP_KERNEL, 0), "mm_struct": (1408, 1536, GFP_KERNEL, 1),
          "seq_file": (120, 128, GFP_KERNEL | GFP_ZERO, 0),
          # the mm paths (kernel/workload/mm): VMAs, their locks, anon_vmas, vmap areas
          "vm_area_struct": (176, 176, GFP_KERNEL, 1), "vma_lock": (40, 40, GFP_KERNEL, 1),
          "anon_vma": (96, 104, GFP_KERNEL, 1), "anon_vma_chain": (64, 64, GFP_KERNEL, 1),
          "vmap_area": (72, 72, GFP_KERNEL, 0)}

# trace_entry context of the code that fires an event: (irq flags, preempt depth)
D = TRACE_FLAG_IRQS_OFF
HARDIRQ = TRACE_FLAG_HARDIRQ | TRACE_FLAG_IRQS_OFF
NEED_RESCHED = TRACE_FLAG_NEED_RESCHED | TRACE_FLAG_PREEMPT_RESCHED  # 'N'


def wheel_bucket(expires: int, clk: int) -> tuple[int, int]:
    """calc_wheel_index(): (bucket_expiry, idx) of a timer-wheel timer (levels 0-2)."""
    delta = expires - clk
    lvl = 0 if delta < 63 else 1 if delta < 504 else 2
    shift = 3 * lvl
    e = (expires >> shift) + 1
    return e << shift, lvl * 64 + (e & 63)


