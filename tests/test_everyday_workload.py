"""The everyday workload of issue 20 under ``tracefs-sim run`` with every event enabled:
list a directory, read a file, sleep, ping 127.0.0.1 twice, write 1 MB with dd, sync and
remove it, start a child shell.  The simulated kernel must answer what these programs
really did with the events of each subsystem family 6.12 fires for it, with fields that
agree with each other and with what the programs did, and nothing for what they did not.

One run (a module fixture) is checked family by family.  Needs root and /dev/fuse.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.mount,
    pytest.mark.skipif(os.geteuid() != 0, reason="tracefs-sim run needs root"),
]

WORKLOAD = r"""
T=/sys/kernel/tracing
echo 30000 > $T/buffer_size_kb
echo 1 > $T/events/enable
ls /usr > /dev/null
cat /etc/hostname > /dev/null
sleep 0.2
ping -c 2 -i 0.2 127.0.0.1 > /dev/null
dd if=/dev/zero of=$DIR/one-mb bs=64k count=16 2> /dev/null
sync
rm $DIR/one-mb
sh -c true
echo 0 > $T/events/enable
cat $T/trace > $DIR/trace
"""

LINE = re.compile(r"^\s*(?P<comm>.{1,24}?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+(?P<flags>\S+)\s+"
                  r"(?P<ts>[\d.]+):\s+(?P<body>.*)$")
SYSCALL = re.compile(r"(sys_\w+)(\(| -> )")


@dataclass(frozen=True, slots=True)
class Event:
    comm: str
    pid: int
    cpu: int
    name: str
    body: str

    def field(self, name: str) -> str:
        """The value of ``name=value`` in the event's text."""
        m = re.search(rf"(?:^|[\s,]){re.escape(name)}=(\S+)", self.body)
        assert m, f"{name}= not in {self.name}: {self.body}"
        return m.group(1)


def parse(text: str) -> list[Event]:
    """The trace's events, named as their format files name them (sys_enter_NAME and
    sys_exit_NAME for the syscalls:* events, which print the syscall's name)."""
    out = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = LINE.match(line)
        if m is None:
            # 9p_protocol_dump prints its hex dump over several lines
            assert out and out[-1].name == "9p_protocol_dump", f"unparsable trace line: {line!r}"
            continue
        body = m.group("body")
        name, sep, _ = body.partition(": ")
        if not (sep and re.fullmatch(r"\w+", name)):
            s = SYSCALL.match(body)
            assert s, f"unknown event text: {line!r}"
            name = ("sys_enter_" if s.group(2) == "(" else "sys_exit_") + s.group(1)[4:]
        out.append(Event(m.group("comm"), int(m.group("pid")), int(m.group("cpu")), name, body))
    return out


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> list[Event]:
    if shutil.which("ping") is None:
        # installed as the tool tests install theirs (scripts/ftracetest does the same)
        subprocess.run(["bash", str(ROOT / "scripts/setup-tools"), "iputils-ping"],
                       capture_output=True, timeout=600)
        if shutil.which("ping") is None:
            pytest.skip("ping(8) (iputils-ping) cannot be installed")
    d = tmp_path_factory.mktemp("everyday")
    r = subprocess.run([sys.executable, "-m", "tracefs_sim", "run", "--cpus", "2",
                        "--server-log", str(d / "server.log"), "--", "sh", "-c", WORKLOAD],
                       env=dict(os.environ, PYTHONPATH=str(ROOT), DIR=str(d)),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in (d / "server.log").read_text()
    ev = parse((d / "trace").read_text())
    assert ev, "empty trace"
    return ev


def kinds(events: list[Event]) -> Counter[str]:
    return Counter(e.name for e in events)


def execs(events: list[Event]) -> dict[int, str]:
    """pid -> the program it exec'd."""
    return {e.pid: e.field("filename") for e in events if e.name == "sched_process_exec"}


def test_the_programs_that_ran_and_nothing_else(events: list[Event]) -> None:
    """Exactly the workload's programs exec'd; every syscall event is a traced task's
    (or the mount's own kworkers do not make syscalls), each enter has its exit."""
    progs = sorted(os.path.basename(f) for f in execs(events).values())
    # the last cat (of the trace) starts after the events are off
    want = sorted(["ls", "cat", "sleep", "ping", "dd", "sync", "rm", "sh"])
    assert progs == want, progs
    traced = {e.pid for e in events if e.name.startswith("sys_enter")}
    assert all(e.comm not in ("swapper/0", "swapper/1", "<idle>") for e in events
               if e.name.startswith("sys_")), "a syscall event of an idle task"
    enters: Counter[tuple[int, str]] = Counter()
    exits: Counter[tuple[int, str]] = Counter()
    for e in events:
        if e.name.startswith("sys_enter_"):
            enters[(e.pid, e.name[10:])] += 1
        elif e.name.startswith("sys_exit_"):
            exits[(e.pid, e.name[9:])] += 1
    # a process exits in exit_group and execve's new image returns from it; vfork's
    # child returns from it too (0), the parent later (the child's pid)
    for (pid, name), n in enters.items():
        if name in ("exit_group", "vfork", "execve"):
            continue
        assert exits[(pid, name)] == n, (pid, name, n, exits[(pid, name)])
    assert len(traced) >= 9


def test_processes_fork_exec_exit_and_are_reaped(events: list[Event]) -> None:
    k = kinds(events)
    for name in ("task_newtask", "sched_process_fork", "sched_process_exec", "sched_process_exit",
                 "sched_process_wait", "sched_process_free", "sched_wakeup_new", "task_rename"):
        assert k[name], name
    forked = {int(e.field("child_pid")) for e in events if e.name == "sched_process_fork"}
    exited = {e.pid for e in events if e.name == "sched_process_exit"}
    assert set(execs(events)) <= forked, "an exec of a task never forked"
    assert set(execs(events)) <= exited


def test_memory_family(events: list[Event]) -> None:
    """Faults in mappings, paired mmap_lock events per mm, page alloc/free, the maple
    tree, TLB flushes, exit teardown."""
    k = kinds(events)
    for name in ("page_fault_user", "mmap_lock_start_locking", "mmap_lock_acquire_returned",
                 "mmap_lock_released", "rss_stat", "mm_page_alloc", "mm_page_free",
                 "mm_page_free_batched", "mm_lru_insertion", "mm_filemap_map_pages",
                 "exit_mmap", "vm_unmapped_area", "ma_write", "ma_read", "tlb_flush",
                 "percpu_alloc_percpu", "percpu_free_percpu"):
        assert k[name], name
    # every acquire is released by the same task (a task's mmap_lock sections nest
    # nowhere in these programs), and each acquire was asked for
    held: dict[tuple[int, str], int] = defaultdict(int)
    for e in events:
        key = (e.pid, e.field("mm")) if e.name.startswith("mmap_lock_") else None
        if e.name == "mmap_lock_acquire_returned" and e.field("success") == "true":
            held[key] += 1
        elif e.name == "mmap_lock_released":
            held[key] -= 1
            assert held[key] >= -1, f"released more than acquired: {e}"
    # a trylock (the fault path's mmap_read_trylock) returns without start_locking
    assert 0 < k["mmap_lock_start_locking"] <= k["mmap_lock_acquire_returned"]
    # user faults are in user space, kernel ones in the kernel's (or a user copy)
    for e in events:
        if e.name == "page_fault_user":
            assert int(e.field("address"), 16) < 1 << 47, e
            assert int(e.field("ip"), 16) < 1 << 47, e


def test_file_family(events: list[Event]) -> None:
    """The 9P root under the programs' file syscalls: every request answered with its
    tag, netfs under dd's writes, the written inode dirtied and written back by sync."""
    k = kinds(events)
    for name in ("9p_client_req", "9p_client_res", "9p_fid_ref", "netfs_write_iter",
                 "netfs_write", "netfs_read", "netfs_rreq", "writeback_mark_inode_dirty",
                 "writeback_dirty_inode_start", "writeback_dirty_inode"):
        assert k[name], name
    open_tags: dict[str, str] = {}
    for e in events:
        if e.name == "9p_client_req":
            tag = re.search(r"tag\s+(\d+)", e.body).group(1)
            assert tag not in open_tags, f"tag {tag} in use twice: {e}"
            open_tags[tag] = e.body.split("request ", 1)[1].split()[0]
        elif e.name == "9p_client_res":
            tag = re.search(r"tag\s+(\d+)", e.body).group(1)
            assert open_tags.pop(tag) == e.body.split("response ", 1)[1].split()[0], e
    assert not open_tags, open_tags
    dd = [p for p, f in execs(events).items() if f.endswith("/dd")]
    assert dd and any(e.name == "netfs_write_iter" and e.pid == dd[0] for e in events)


def test_timers_and_interrupts(events: list[Event]) -> None:
    k = kinds(events)
    for name in ("hrtimer_start", "hrtimer_expire_entry", "hrtimer_expire_exit", "hrtimer_cancel",
                 "timer_start", "timer_expire_entry", "local_timer_entry", "local_timer_exit",
                 "softirq_raise", "softirq_entry", "softirq_exit", "irq_handler_entry",
                 "irq_handler_exit", "workqueue_queue_work", "workqueue_execute_start"):
        assert k[name], name
    # sleep's nanosleep arms one hrtimer that expires and wakes it
    sleep = [p for p, f in execs(events).items() if f.endswith("/sleep")]
    assert sleep
    assert any(e.name == "sched_wakeup" and e.field("pid") == str(sleep[0]) for e in events)


def test_network_family(events: list[Event]) -> None:
    """ping 127.0.0.1 twice: two echo requests of 64 bytes out through lo and their
    replies in, each skb freed once after it was queued (the same skbaddr from
    net_dev_queue to consume_skb/kfree_skb)."""
    k = kinds(events)
    for name in ("net_dev_queue", "net_dev_start_xmit", "net_dev_xmit", "netif_rx",
                 "netif_receive_skb", "napi_poll", "consume_skb", "sk_data_ready",
                 "sock_send_length", "sock_recv_length", "fib_table_lookup",
                 "skb_copy_datagram_iovec"):
        assert k[name], name
    ping = [p for p, f in execs(events).items() if f.endswith("/ping")]
    assert ping
    sent = [e for e in events if e.name == "sock_send_length" and e.pid == ping[0]]
    assert [e.body.split("length = ")[1].split(",")[0] for e in sent] == ["64", "64"], sent
    live: set[str] = set()
    for e in events:
        if e.name == "net_dev_queue":
            addr = e.field("skbaddr")
            assert addr not in live, f"skb queued twice before it was freed: {e}"
            live.add(addr)
        elif e.name in ("consume_skb", "kfree_skb"):
            live.discard(e.field("skbaddr"))
    assert not live, f"skbs never freed: {live}"
    # nothing but ping (and the machine's own) touched the network
    assert {e.pid for e in events if e.name == "sock_send_length"} == set(ping)
