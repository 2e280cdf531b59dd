"""The file family of traced programs (kernel/workload/fs9p/, filemap.py, writeback.py,
fs.py, files.py): the 9P requests, netfs requests and inode writeback that opening,
reading, writing, syncing and removing files on the reference machine's 9P root fire,
their fields as 6.12's TP_fast_assign records them (include/trace/events/9p.h, netfs.h,
writeback.h), and the consistency of the modelled values: each request answered with
its own type and tag, fid and netfs request references balanced, the written file's
inode dirtied and written back.  Then one run of a real shell under the real tracer.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from test_mm_family import events, tracer  # noqa: F401 (tracer: a fixture)
from test_traced_tasks import AT_FDCWD, Env, Host, args, trace_real

A = 1000
NR = {"read": 0, "write": 1, "close": 3, "getpid": 39, "sync": 162, "unlink": 87, "openat": 257}
FS = ("9p/9p_client_req", "9p/9p_client_res", "9p/9p_fid_ref", "netfs", "writeback", "filemap")
O_WRONLY_CREAT_TRUNC = 0x241
COUNT = 0x10000


def call(env: Env, us: float, name: str, a: tuple[int, ...], ret: int,
         caps: dict[int, bytes] | None = None) -> None:
    env.tr.sys_enter(env.at(us), 1, A, A, NR[name], args(*a), caps or {})
    env.tr.sys_exit(env.at(us + 10), 1, A, A, NR[name], ret, {}, 0, 0)


def read_hostname(env: Env, start: float = 10) -> None:
    """open /etc/hostname, read 9 bytes of a 4096-byte buffer, close."""
    call(env, start, "openat", (AT_FDCWD, 0x402000, 0, 0), 3, {1: b"/etc/hostname"})
    call(env, start + 20, "read", (3, 0x7FFC0000, 4096), 9)
    call(env, start + 40, "close", (3,), 0)


def write_file_and_sync(env: Env, close_first: bool) -> None:
    """create /tmp/x, write 64 KiB, sync (before or after the close), unlink it."""
    call(env, 100, "openat", (AT_FDCWD, 0x402000, O_WRONLY_CREAT_TRUNC, 0o644), 3, {1: b"/tmp/x"})
    call(env, 120, "write", (3, 0x7FFC0000, COUNT), COUNT)
    if close_first:
        call(env, 150, "close", (3,), 0)
    call(env, 200, "sync", (), 0)
    if not close_first:
        call(env, 350, "close", (3,), 0)
    call(env, 400, "unlink", (0x402000,), 0, {0: b"/tmp/x"})


@pytest.fixture
def fs_env() -> Env:
    env = Env(*FS)
    env.tr.attached(env.at(0), 1, A, A, "prog")
    return env


def p9(evs: list[tuple[str, str, str]]) -> list[tuple[str, str, str, str, str, str]]:
    """(req|res, client, type, tag, err, task) of the 9P request events."""
    out = []
    for task, name, text in evs:
        if name == "9p_client_req":
            m = re.fullmatch(r"client (\d+) request (P9_\w+) tag\s+(\d+)", text)
            assert m, text
            out.append(("req", m.group(1), m.group(2), m.group(3), "", task))
        elif name == "9p_client_res":
            m = re.fullmatch(r"client (\d+) response (P9_\w+) tag\s+(\d+) err (-?\d+)", text)
            assert m, text
            out.append(("res", m.group(1), m.group(2), m.group(3), m.group(4), task))
    return out


def assert_requests_answered(evs: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """p9_client_rpc(): each task's request is answered next in that task, same client,
    type and tag (one request in flight per task); requests in flight at the same time
    (two tasks on two CPUs) have different tags.  Returns (type, err) of each."""
    seq = p9(evs)
    in_flight: dict[str, str] = {}       # tag -> the task whose request has it
    per_task: dict[str, list[tuple[str, str, str, str, str, str]]] = {}
    for ev in seq:
        kind, _, _, tag, _, task = ev
        if kind == "req":
            assert tag not in in_flight, f"tag {tag} of {task} is in flight for {in_flight.get(tag)}"
            in_flight[tag] = task
        else:
            assert in_flight.pop(tag, None) == task, ev
        per_task.setdefault(task, []).append(ev)
    assert not in_flight, in_flight
    out = []
    for task_seq in per_task.values():
        assert len(task_seq) % 2 == 0, task_seq
        for req, res in zip(task_seq[::2], task_seq[1::2], strict=True):
            assert req[0] == "req" and res[0] == "res", (req, res)
            assert req[1:4] == res[1:4], (req, res)
            out.append((req[2], res[4]))
    return out


def assert_fid_refs_balanced(evs: list[tuple[str, str, str]]) -> None:
    """9p_fid_ref (9p.h) records the count at the call: p9_fid_get/put trace before they
    change it, create at 1, destroy when it is freed; a fid made in the trace is
    destroyed by its end (those that existed before, the root's, live on)."""
    count: dict[int, int] = {}
    created: set[int] = set()
    for _, name, text in evs:
        if name != "9p_fid_ref":
            continue
        m = re.fullmatch(r"(get|put|create|destroy)\s+fid (\d+), refcount (\d+)", text)
        assert m, text
        op, fid, ref = m.group(1), int(m.group(2)), int(m.group(3))
        if op == "create":
            assert fid not in count and ref == 1, text
            count[fid] = 1
            created.add(fid)
            continue
        if fid not in count:            # one that existed before (the root's, a cwd's)
            count[fid] = ref
        assert count[fid] == ref, (text, count[fid])
        if op == "get":
            count[fid] += 1
        elif op == "put":
            count[fid] -= 1
        else:
            del count[fid]
    assert not created & set(count), {f: count[f] for f in created & set(count)}


def assert_netfs_refs_balanced(evs: list[tuple[str, str, str]]) -> set[str]:
    """netfs_rreq_ref/netfs_sreq_ref (netfs.h) record the count after the change: NEW at
    1, GET +1, PUT -1, SEE unchanged; each request and subrequest ends at 0 and its FREE
    follows.  Returns the request ids."""
    rreq: dict[str, int] = {}
    sreq: dict[str, int] = {}
    freed: set[str] = set()
    for _, name, text in evs:
        if name in ("netfs_rreq_ref", "netfs_sreq_ref"):
            m = re.fullmatch(r"R=(\w+(?:\[\w+\])?) (NEW|GET|PUT|SEE)\b.* r=(\d+)", text)
            assert m, text
            rid, op, ref = m.group(1), m.group(2), int(m.group(3))
            refs = rreq if name == "netfs_rreq_ref" else sreq
            if op == "NEW":
                assert rid not in refs and ref == 1, text
                refs[rid] = 1
                continue
            refs.setdefault(rid, 2)     # a subrequest starts at 2 (netfs_alloc_subrequest), untraced
            refs[rid] += {"GET": 1, "PUT": -1, "SEE": 0}[op]
            assert refs[rid] == ref, (text, refs[rid])
        elif name in ("netfs_rreq", "netfs_sreq") and " FREE " in text:
            rid = text.split()[0][2:]
            refs = rreq if name == "netfs_rreq" else sreq
            assert refs.get(rid) == 0, (text, refs.get(rid))
            freed.add(rid)
    assert all(v == 0 for v in rreq.values()) and all(v == 0 for v in sreq.values()), (rreq, sreq)
    assert set(rreq) | set(sreq) <= freed
    return set(rreq)


# ------------------------------------------------------------------ reading
def test_reading_a_file(fs_env: Env) -> None:
    """open walks from the root fid, getattr, walks the last component and lopens it;
    the read is one netfs DIO read (9P's cache=none) of the caller's count, its i_size
    the bytes the read returned; close clunks the fids."""
    read_hostname(fs_env)
    evs = events(fs_env)
    reqs = assert_requests_answered(evs)
    assert [t for t, _ in reqs] == ["P9_TWALK", "P9_TGETATTR", "P9_TWALK", "P9_TGETATTR", "P9_TWALK",
                                    "P9_TLOPEN", "P9_TREAD", "P9_TREAD", "P9_TCLUNK", "P9_TCLUNK",
                                    "P9_TCLUNK"]
    assert all(err == "0" for _, err in reqs)
    assert_fid_refs_balanced(evs)
    assert len(assert_netfs_refs_balanced(evs)) == 1
    (read,) = [t for _, n, t in evs if n == "netfs_read"]
    assert re.fullmatch(r"R=\w{8} DIO-READ  c=00000000 ni=[0-9a-f]+ s=0 l=1000 sz=9", read), read
    # the subrequest stops at the end of the file: 9 of 0x1000 bytes transferred
    assert any(re.fullmatch(r"R=\w{8}\[1\] DOWN EOF .* 9/1000 .*", t) for _, n, t in evs if n == "netfs_sreq")
    assert all(task == "prog-1000" for task, n, _ in evs if n.startswith("9p_"))


def test_a_missing_file_is_a_failed_walk(fs_env: Env) -> None:
    """p9_check_errors(): the Rlerror's -ENOENT is the response's err; the walk's new fid
    is destroyed at once (refcount 1: p9_client_walk's error path)."""
    call(fs_env, 10, "openat", (AT_FDCWD, 0x402000, 0, 0), -2, {1: b"/etc/missing"})
    evs = events(fs_env)
    reqs = assert_requests_answered(evs)
    assert reqs[-1] == ("P9_TWALK", "-2") and all(e == "0" for _, e in reqs[:-1])
    assert [t for _, n, t in evs if n == "9p_fid_ref" and t.startswith("destroy")][0].endswith("refcount 1")
    assert not any(n.startswith("netfs") for _, n, _ in evs)


# ------------------------------------------------------------------ writing
def test_writing_dirties_the_inode_and_writes_through(fs_env: Env) -> None:
    """An O_CREAT open of a missing file: the walk fails, TLCREATE makes it; the write is
    one unbuffered netfs write of the caller's count (a TWRITE); file_update_time()
    dirties the inode (I_DIRTY_SYNC), whose ino is the one netfs wrote."""
    write_file_and_sync(fs_env, close_first=True)
    evs = events(fs_env)
    reqs = assert_requests_answered(evs)
    types = [t for t, _ in reqs]
    assert ("P9_TWALK", "-2") in reqs and "P9_TLCREATE" in types and "P9_TUNLINKAT" in types
    assert types.count("P9_TWRITE") == 1
    assert_fid_refs_balanced(evs)
    assert len(assert_netfs_refs_balanced(evs)) == 1
    (it,) = [t for _, n, t in evs if n == "netfs_write_iter"]
    m = re.fullmatch(r"WRITE-ITER i=([0-9a-f]+) s=0 l=([0-9a-f]+) f=0", it)
    assert m and int(m.group(2), 16) == COUNT, it
    ino = int(m.group(1), 16)
    (w,) = [t for _, n, t in evs if n == "netfs_write"]
    assert re.fullmatch(rf"R=\w{{8}} UNB-WRITE c=00000000 i={ino:x} by=0-ffffffffffffffff", w), w
    for kind in ("writeback_mark_inode_dirty", "writeback_dirty_inode_start", "writeback_dirty_inode"):
        (t,) = [t for _, n, t in evs if n == kind]
        assert t == f"bdi 9p-1: ino={ino} state= flags=I_DIRTY_SYNC", (kind, t)
    (enq,) = [t for _, n, t in evs if n == "writeback_dirty_inode_enqueue"]
    assert re.fullmatch(rf"dev 0,\d+ ino {ino} dirtied \d+ state I_DIRTY_SYNC mode 0100644", enq), enq
    # closed before the sync: the inode was evicted (9P drops it), nothing to write back
    assert not any(n in ("writeback_queue", "writeback_single_inode") for _, n, _ in evs)


def test_sync_writes_the_dirty_inode_back(fs_env: Env) -> None:
    """sync with the file still open: the sync work is queued for the 9P bdi and run by
    the flusher kworker, which writes the dirty inode (writeback_single_inode_start,
    v9fs's write_inode), then a pass that finds nothing; writeback_pages_written 0 (no
    dirty pages under cache=none)."""
    write_file_and_sync(fs_env, close_first=False)
    evs = events(fs_env)
    (it,) = [t for _, n, t in evs if n == "netfs_write_iter"]
    ino = int(re.search(r"i=([0-9a-f]+)", it).group(1), 16)
    wb = [(task, n, t) for task, n, t in evs if n.startswith("writeback_") and "dirty" not in n]
    assert [n for _, n, _ in wb] == [
        "writeback_queue", "writeback_exec", "writeback_start", "writeback_queue_io",
        "writeback_single_inode_start", "writeback_write_inode_start", "writeback_write_inode",
        "writeback_single_inode", "writeback_written", "writeback_start", "writeback_queue_io",
        "writeback_written", "writeback_pages_written"]
    assert wb[0][0] == "prog-1000" and all(task.startswith("kworker/") for task, _, _ in wb[1:])
    assert "reason=sync" in wb[0][2] and "sync_mode=1" in wb[0][2] and wb[0][2].startswith("bdi 9p-1: ")
    assert [f"ino={ino}" in t for _, n, t in wb if "inode" in n] == [True] * 4
    # writeback.h's print fmt: the state's flags, and age from jiffies when printed
    start, done = (t for _, n, t in wb if n.startswith("writeback_single_inode"))
    fmt = (r"bdi 9p-1: ino={} state={} dirtied_when=(\d+) age=(\d+) index=0 "
           r"to_write=9223372036854775807 wrote=0 cgroup_ino=1")
    m = re.fullmatch(fmt.format(ino, re.escape("I_DIRTY_SYNC|I_SYNC")), start)
    assert m and int(m.group(2)) < 5, start
    assert re.fullmatch(fmt.format(ino, "I_SYNC"), done), done
    assert wb[-1][2] == "0"


def test_sync_with_nothing_dirty_queues_nothing(fs_env: Env) -> None:
    call(fs_env, 10, "sync", (), 0)
    assert events(fs_env) == []


# ------------------------------------------------------------------ nothing
def test_a_getpid_program_fires_no_file_event(fs_env: Env) -> None:
    call(fs_env, 10, "getpid", (), A)
    call(fs_env, 30, "getpid", (), A)
    fs_env.tick(1000)
    assert events(fs_env) == []


def test_nothing_fires_with_the_events_off() -> None:
    env = Env()
    env.tr.attached(env.at(0), 1, A, A, "prog")
    read_hostname(env)
    write_file_and_sync(env, close_first=False)
    assert env.lines() == []


# ------------------------------------------------------------------ the real tracer
def test_a_real_shell_reads_writes_and_syncs(tracer: Path, tmp_path: Path) -> None:  # noqa: F811
    """``sh -c 'cat FILE; echo x > OUT; sync; rm OUT'`` under the tracer: its 9P requests
    are answered in order, the fid and netfs references balance, the written file's
    inode is dirtied."""
    sh = shutil.which("sh")
    assert sh
    src = tmp_path / "in.txt"
    src.write_text("hello\n")
    out = tmp_path / "out.txt"
    text, _ = trace_real(tracer, [sh, "-c", f"cat {src}; echo x > {out}; sync; rm {out}"], *FS,
                         buffer_kb=8000)
    evs = []
    for ln in text.splitlines():
        m = re.match(r"\s*(\S+)\s+\[\d+\]\s+\S+\s+\S+: (\w+): (.*)", ln)
        if m:
            evs.append((m.group(1), m.group(2), m.group(3)))
    kinds = Counter(n for _, n, _ in evs)
    for k in ("9p_client_req", "9p_client_res", "9p_fid_ref", "netfs_read", "netfs_write_iter",
              "writeback_dirty_inode"):
        assert kinds[k], (k, kinds)
    types = [t for t, _ in assert_requests_answered(evs)]
    assert {"P9_TWALK", "P9_TLOPEN", "P9_TREAD", "P9_TWRITE", "P9_TLCREATE", "P9_TUNLINKAT"} <= set(types)
    assert_fid_refs_balanced(evs)
    assert_netfs_refs_balanced(evs)


class CwdHost(Host):
    """The host's answers, with the working directory the host reports."""

    def __init__(self, cwd: str) -> None:
        self.dir = cwd

    def cwd(self, tgid: int) -> str | None:
        return self.dir


def test_a_chdir_the_model_did_not_see_is_taken_from_the_host() -> None:
    """A relative open walks the 9P root from the working directory; after a time the
    tracer reported no syscalls (its lifecycle mode), the shell may have changed
    directory unseen (ftracetest's ``cd`` into the tracing dir): the host's working
    directory is asked again, and a tracefs one takes no 9P request."""
    env = Env(*FS)
    host = env.tr.host = CwdHost("/home/u")
    env.tr.attached(env.at(0), 1, A, A, "prog")
    call(env, 10, "openat", (AT_FDCWD, 0x402000, 0, 0), 3, {1: b"notes.txt"})
    walked = [t for t, _ in assert_requests_answered(events(env))]
    assert "P9_TWALK" in walked, walked
    host.dir = "/sys/kernel/tracing"
    env.tr.resync()
    before = len(p9(events(env)))
    call(env, 100, "openat", (AT_FDCWD, 0x402000, 0, 0), 4, {1: b"events/sched/enable"})
    assert p9(events(env))[before:] == []


def test_a_relative_chdir_right_after_lifecycle_mode_starts_from_the_old_directory() -> None:
    """The host's working directory is taken when syscalls become visible again, before
    any of them runs: a relative chdir at the first syscall starts from there, although
    the host has already moved when its exit is reported."""
    env = Env(*FS)
    host = env.tr.host = CwdHost("/home/u")
    env.tr.attached(env.at(0), 1, A, A, "prog")
    call(env, 10, "openat", (AT_FDCWD, 0x402000, 0, 0), 3, {1: b"notes.txt"})
    env.tr.resync()
    host.dir = "/home/u/sub"        # where the chdir below leads
    env.tr.sys_enter(env.at(100), 1, A, A, 80, args(0x402000), {0: b"sub"})
    env.tr.sys_exit(env.at(110), 1, A, A, 80, 0, {}, 0, 0)
    d = env.k.workload.fs.v9fs.cwds[A]
    assert d is not None and d.path == "/home/u/sub"
