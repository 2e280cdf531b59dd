"""The memory family of traced programs (kernel/workload/mm/, mmap.py): what a program's
exec, faults, mmap/munmap and exit fire, their fields as 6.12's TP_fast_assign records
them (include/trace/events/{kmem,mmap,mmap_lock,maple_tree,tlb,percpu,vmalloc}.h,
arch/x86/include/asm/trace/exceptions.h), and the consistency of the modelled values:
page frames allocated and freed once each, mmap_lock taken and released in pairs, faults
inside the mappings the process has.  Then one run of a real program under the real
tracer.

The records are hand-written tracer sequences fed through ``kernel.workload.traced`` as
tests/test_traced_tasks.py feeds them; the maps are those a non-PIE program and its dynamic
loader would show.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from test_traced_tasks import AT_FDCWD, Env, Host, args, trace_real

from tracefs_sim.host.build import build

A, B = 1000, 2000
NR = {"read": 0, "openat": 257, "mmap": 9, "munmap": 11, "getpid": 39, "execve": 59,
      "exit_group": 231}
MM = ("exceptions", "mmap_lock", "maple_tree", "kmem/mm_page_alloc", "kmem/mm_page_free",
      "kmem/mm_page_free_batched", "kmem/rss_stat", "tlb", "mmap", "percpu", "vmalloc",
      "filemap", "pagemap")
MAPS = """\
00400000-00401000 r--p 00000000 00:15 1234 /usr/bin/prog
00401000-00402000 r-xp 00001000 00:15 1234 /usr/bin/prog
00402000-00403000 rw-p 00002000 00:15 1234 /usr/bin/prog
00405000-00426000 rw-p 00000000 00:00 0 [heap]
7f1234560000-7f1234561000 r--p 00000000 00:15 99 /usr/lib/ld.so
7f1234561000-7f1234580000 r-xp 00001000 00:15 99 /usr/lib/ld.so
7f1234580000-7f1234582000 rw-p 00020000 00:15 99 /usr/lib/ld.so
7ffd12340000-7ffd12361000 rw-p 00000000 00:00 0 [stack]
7ffd123fe000-7ffd12400000 r-xp 00000000 00:00 0 [vdso]
"""
ANON = 0x7F0000000000          # what the program's mmap returned (observed)
ANON_LEN = 0x10000


class MapsHost(Host):
    """The host's /proc/PID/maps: the image above (before and after the exec)."""

    def maps(self, tgid: int) -> str | None:
        return MAPS


def events(env: Env) -> list[tuple[str, str, str]]:
    """(task, event, its text) of every line, the ticks left out."""
    out = []
    for ln in env.lines():
        _, task, _, _, rest = ln.split(None, 4)
        name, _, text = rest.partition(": ")
        out.append((task, name, text))
    return out


def field(text: str, name: str) -> str:
    m = re.search(rf"(?:^|[ \t]){name}[=:]\s*(\S+)", text)
    assert m, (name, text)
    return m.group(1)


def ranges() -> list[tuple[int, int, str]]:
    out = []
    for ln in MAPS.splitlines():
        span, perms = ln.split()[:2]
        lo, hi = span.split("-")
        out.append((int(lo, 16), int(hi, 16), perms))
    return out


def run_program(env: Env, faults: tuple[int, int] = (3, 2)) -> None:
    """execve of /usr/bin/prog (maps at the exec stop), faults, an anonymous mmap that
    faults, its munmap, exit_group; then the RCU ticks that free what exit left, and
    another program switched in on the CPU."""
    tr = env.tr
    tr.attached(env.at(0), 1, A, A, "prog")
    tr.sys_enter(env.at(10), 1, A, A, NR["execve"], args(0x1000, 0x2000, 0x3000), {0: b"/usr/bin/prog"})
    tr.maps(env.at(40), 1, A, A, MAPS)
    tr.exec(env.at(50), 1, A, A, A, "prog", "/usr/bin/prog")
    tr.sys_exit(env.at(55), 1, A, A, NR["execve"], 0, {}, 0, 0)
    tr.faults(env.at(100), 1, A, A, faults[0], 0)
    tr.sys_enter(env.at(110), 1, A, A, NR["mmap"], args(0, ANON_LEN, 3, 0x22, (1 << 64) - 1, 0), {})
    tr.sys_exit(env.at(120), 1, A, A, NR["mmap"], ANON, {}, 0, 0)
    tr.faults(env.at(200), 1, A, A, faults[1], 0)
    tr.sys_enter(env.at(210), 1, A, A, NR["munmap"], args(ANON, ANON_LEN), {})
    tr.sys_exit(env.at(220), 1, A, A, NR["munmap"], 0, {}, 0, 0)
    tr.sys_enter(env.at(300), 1, A, A, NR["exit_group"], args(0), {})
    tr.exit(env.at(310), 1, A, A, 0, True)
    tr.gone(env.at(320), 1, A, A, 0)
    env.tick(20_000)
    # another program on the CPU: the switch drops the idle task's lazy reference to the
    # dead mm, whose last put frees its pgd and per-CPU counters
    tr.attached(env.at(21_000), 1, B, B, "other")
    tr.sys_enter(env.at(21_010), 1, B, B, NR["getpid"], args(), {})
    tr.sys_exit(env.at(21_020), 1, B, B, NR["getpid"], B, {}, 0, 0)
    env.tick(40_000)


@pytest.fixture
def mm_env() -> Env:
    env = Env(*MM)
    env.tr.host = MapsHost()
    return env


def test_a_program_fires_the_memory_events(mm_env: Env) -> None:
    run_program(mm_env)
    kinds = Counter(name for _, name, _ in events(mm_env))
    for k in ("page_fault_user", "mmap_lock_start_locking", "mmap_lock_acquire_returned",
              "mmap_lock_released", "ma_read", "ma_write", "mm_page_alloc", "mm_page_free",
              "mm_page_free_batched", "mm_lru_insertion", "rss_stat", "tlb_flush", "vm_unmapped_area",
              "exit_mmap"):
        assert kinds[k], (k, kinds)
    assert kinds["exit_mmap"] == 2              # the old image's mm at the exec, the new at exit
    # one page_fault_user per fault the tracer counted (minflt 3, then 2)
    assert kinds["page_fault_user"] == 5


def test_faults_are_inside_the_mappings_and_user_mode(mm_env: Env) -> None:
    """page_fault_user records address, ip and error_code (exceptions.h): the address is
    in a mapping the process had then, the ip in an executable one, X86_PF_USER set."""
    run_program(mm_env)
    live = ranges()
    anon = (ANON, ANON + ANON_LEN, "rw-p")
    seen = 0
    for task, name, text in events(mm_env):
        if name == "vm_unmapped_area":
            live.append(anon)                       # mapped from the mmap on
        if name == "page_fault_user":
            seen += 1
            addr, ip, code = (int(field(text, f), 16) for f in ("address", "ip", "error_code"))
            assert task == "prog-1000"
            assert code & 0x4, text                 # X86_PF_USER
            hit = [r for r in live if r[0] <= addr < r[1]]
            assert hit, f"fault outside the mappings: {text}"
            if code & 0x2:                          # X86_PF_WRITE: a writable mapping
                assert hit[0][2][1] == "w", text
            assert any(lo <= ip < hi and p[2] == "x" for lo, hi, p in live), text
            if code & 0x10:                         # an instruction fetch: at its own ip
                assert addr == ip
    assert seen == 5


def test_vm_unmapped_area_shows_the_observed_mmap(mm_env: Env) -> None:
    """vm_unmapped_area (mmap.h): addr is what mmap returned, len the length, the
    top-down search (flags VM_UNMAPPED_AREA_TOPDOWN) from PAGE_SIZE below mmap_base."""
    run_program(mm_env)
    got = [text for _, name, text in events(mm_env) if name == "vm_unmapped_area"
           and field(text, "addr") == f"0x{ANON:x}"]
    assert len(got) == 1, got
    text = got[0]
    assert (field(text, "err"), field(text, "flags"), field(text, "len"), field(text, "lo"),
            field(text, "mask"), field(text, "ofs")) == ("0", "0x1", f"0x{ANON_LEN:x}", "0x1000", "0x0", "0x0")
    hi = int(field(text, "hi"), 16)
    assert ANON + ANON_LEN <= hi <= 0x7FFD12340000     # below the stack, above the result


def test_page_frames_are_allocated_and_freed_once(mm_env: Env) -> None:
    """mm_page_alloc/mm_page_free (kmem.h) over the process' life: no frame is handed out
    twice while in use, each allocated frame is freed once (by the end, RCU included),
    at its order (the PTI pgd is order 1), and a batched free (free_unref_folios) follows
    its folio's mm_page_free."""
    run_program(mm_env)
    live: dict[int, str] = {}
    allocated: set[int] = set()
    freed: Counter[int] = Counter()
    last_free: list[int] = []
    for _, name, text in events(mm_env):
        if name not in ("mm_page_alloc", "mm_page_free", "mm_page_free_batched"):
            continue
        pfn = int(field(text, "pfn"), 16)
        order = field(text, "order")
        if name == "mm_page_alloc":
            assert pfn not in live, f"pfn {pfn:#x} handed out twice"
            live[pfn] = order
            allocated.add(pfn)
        elif name == "mm_page_free":
            assert live.pop(pfn, order) == order, text      # freed at the order it had
            freed[pfn] += 1
            last_free.append(pfn)
        else:
            assert pfn in last_free, f"batched free of {pfn:#x} without its mm_page_free"
    assert allocated and not live, [hex(p) for p in sorted(live)]
    assert all(freed[p] == 1 for p in allocated)


def test_percpu_allocations_are_freed(mm_env: Env) -> None:
    """percpu_alloc_percpu/percpu_free_percpu (percpu.h): the new mm's mm_cid and RSS
    counters are per-CPU allocations freed with the mm, by the same ptr."""
    run_program(mm_env)
    live: set[str] = set()
    allocs = 0
    for _, name, text in events(mm_env):
        if name == "percpu_alloc_percpu":
            allocs += 1
            live.add(field(text, "ptr"))
        elif name == "percpu_free_percpu" and field(text, "ptr") in live:
            live.remove(field(text, "ptr"))
    assert allocs >= 2 and not live


def test_user_pages_and_rss(mm_env: Env) -> None:
    """An anonymous fault allocates GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO, movable;
    rss_stat (kmem.h) keeps one mm_id (mm_ptr_to_hash) for the process, curr=1 in its
    own faults, sizes in pages, back to 0 at exit."""
    run_program(mm_env)
    evs = events(mm_env)
    user = [t for _, n, t in evs if n == "mm_page_alloc" and "GFP_HIGHUSER_MOVABLE" in t]
    assert user and all(field(t, "migratetype") == "1" and
                        field(t, "gfp_flags") == "GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO" for t in user)
    rss = [t for _, n, t in evs if n == "rss_stat"]
    assert len({field(t, "mm_id") for t in rss}) == 1
    last: dict[str, int] = {}
    for t in rss:
        size = int(field(t, "size").rstrip("B"))
        assert size % 4096 == 0 and size >= 0
        last[field(t, "type")] = size
    assert last and all(v == 0 for v in last.values()), last
    # the exec's argument page goes into the new mm before it is current->mm; exit_mmap
    # runs after exit_mm(): curr=0 then, 1 for the program's own faults
    curr = "".join(field(t, "curr") for t in rss)
    assert re.fullmatch(r"01+0+", curr), curr


def test_mmap_lock_is_paired(mm_env: Env) -> None:
    """mmap_lock.h: every acquisition starts (start_locking) and returns
    (acquire_returned success=true) with the same mode and is released in that mode;
    mmap_write_downgrade() turns a held write lock into a read one (an acquire_returned
    write=false without a start); nothing is held when the process is gone."""
    run_program(mm_env)
    held: dict[str, list[str]] = {}
    starting: dict[str, str] = {}
    memcgs = set()
    for _, name, text in events(mm_env):
        if not name.startswith("mmap_lock_"):
            continue
        mm, write = field(text, "mm"), field(text, "write")
        memcgs.add(field(text, "memcg_path"))
        locks = held.setdefault(mm, [])
        if name == "mmap_lock_start_locking":
            assert mm not in starting and "true" not in locks, text
            starting[mm] = write
        elif name == "mmap_lock_acquire_returned":
            assert field(text, "success") == "true"
            if mm in starting:
                assert starting.pop(mm) == write, text
            else:
                assert write == "false" and locks == ["true"], f"acquired without a start: {text}"
                locks.pop()
            locks.append(write)
        else:
            assert write in locks, f"released what is not held: {text}"
            locks.remove(write)
    assert not starting and all(not v for v in held.values()), held
    assert memcgs == {"/user.slice"}                 # the traced command's cgroup (observed)


def test_nothing_fires_without_the_activity(mm_env: Env) -> None:
    """A getpid, an empty read and fault reports of zero: no memory event but the
    switch to the program."""
    tr = mm_env.tr
    tr.attached(mm_env.at(0), 1, A, A, "prog")
    tr.faults(mm_env.at(5), 1, A, A, 0, 0)
    tr.sys_enter(mm_env.at(10), 1, A, A, NR["getpid"], args(), {})
    tr.sys_exit(mm_env.at(20), 1, A, A, NR["getpid"], A, {}, 0, 0)
    tr.faults(mm_env.at(30), 1, A, A, 0, 0)
    tr.sys_enter(mm_env.at(40), 1, A, A, NR["read"], args(0, 0, 0), {})
    tr.sys_exit(mm_env.at(50), 1, A, A, NR["read"], 0, {}, 0, 0)
    mm_env.tick(1000)
    # switching the program in loads its mm (in the idle task's context_switch(), before
    # switch_to()); nothing else
    assert mm_env.lines() == [
        "    10.0 <idle>-0 [001] d..2. tlb_flush: pages:-1 reason:flush on task switch (0)"]


def test_nothing_fires_with_the_events_off() -> None:
    env = Env()
    env.tr.host = MapsHost()
    run_program(env)
    tr = env.tr
    tr.sys_enter(env.at(30_000), 1, A, A, NR["openat"], args(AT_FDCWD, 0x1000, 0, 0), {1: b"/etc/x"})
    assert env.lines() == []


# ------------------------------------------------------------------ the real tracer
@pytest.fixture(scope="module")
def tracer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler (cc) to build the tracer")
    return build(tmp_path_factory.mktemp("mmtracer") / "tracefs-sim-tracer")


def test_a_real_program_faults_in_its_own_mappings(tracer: Path) -> None:
    """``cat /proc/self/maps`` under the tracer: its page faults fire with user-mode
    error codes in its own pid, the lock events pair up, exit_mmap ends its mm."""
    cat = shutil.which("cat")
    assert cat
    text, _ = trace_real(tracer, [cat, "/proc/self/maps"], "exceptions", "mmap_lock", "kmem/rss_stat",
                         "mmap/exit_mmap", buffer_kb=8000)
    faults = re.findall(r"-(\d+)\s+\[\d+\] \S+\s+\S+ page_fault_user: address=0x([0-9a-f]+) "
                        r"ip=0x([0-9a-f]+) error_code=0x([0-9a-f]+)", text)
    assert len(faults) >= 10, text[-2000:]
    assert all(int(code, 16) & 0x4 for _, _, _, code in faults)
    assert len(re.findall(r" exit_mmap: ", text)) >= 1
    starts = len(re.findall(r" mmap_lock_start_locking: ", text))
    returns = len(re.findall(r" mmap_lock_acquire_returned: ", text))
    released = len(re.findall(r" mmap_lock_released: ", text))
    downgrades = len(re.findall(r" mmap_lock_acquire_returned: \S+ \S+ write=false", text)) - \
        len(re.findall(r" mmap_lock_start_locking: \S+ \S+ write=false", text))
    assert starts == returns - downgrades and released == starts, (starts, returns, released)
