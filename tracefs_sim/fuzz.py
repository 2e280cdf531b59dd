"""Command fuzzer for the control files, shared by tests/test_fuzz.py and scripts/fuzz.

A seeded ``random.Random`` builds commands from a corpus of valid ones (hand-picked from the
ftracetest .tc files and the golden scripts, plus, when a directory of the kernel's ftrace
selftests is given, every literal ``echo '...' > FILE`` / ``check_error '...'`` of its
test.d) and mutates them: one token broken, huge and binary inputs, overlong lines, many
small writes on one fd, O_TRUNC vs O_APPEND opens, instances mkdir/rmdir.  Each command
runs against a *driver* (the tree layer, or a real mount through ``os``), which writes as
a program does: a short write is followed by a write of the rest.  The checker asserts:

* no exception other than ``KernelError`` (``OSError`` through the mount) escapes;
* no command takes longer than ``HANG_SECONDS`` (a SIGALRM interrupts a hung tree call);
* each write(2) returns what 6.12's handler returns: one word's bytes on the
  trace_get_user() files (``check_returns``), the whole count on the others;
* a rejected command leaves exactly the state 6.12 leaves: the command also runs on a
  *twin* machine (same seed), reduced to what 6.12 keeps of it (``Fuzzer._expected``:
  the write(2) calls before the failing one, the lines before a failing line, a failed
  event filter), and the two must then read the same in every snapshotted control file.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from types import FrameType
from typing import Protocol, TypeVar

from .kernel.errors import KernelError, _WouldBlock
from .tracefs.node import READ_ONLY, WRITE_APPEND, WRITE_TRUNC, Dir, File, Node

HANG_SECONDS = 10.0
MAX_WRITE = 128 * 1024      # FUSE's default max_write: what one WRITE request carries
WORD_HUGE = 16 * 1024       # the "huge" inputs of the one-word-per-write(2) files
BIG_SNAPSHOT = 256 * 1024   # bytes of snapshot above which the state is reset
R = TypeVar("R")

# ------------------------------------------------------------------------------- the corpus
_PROBES = [
    "p:myprobe vfs_read", "p:kprobes/myprobe vfs_read", "p vfs_read", "p:myprobe vfs_read+0",
    "p:myprobe do_sys_openat2 dfd=%di filename=+0(%si):string flags=%dx:x32",
    "p:myprobe vfs_read $arg1 $arg2 $stack0 +0($stack):u32 comm=$comm",
    "p:myprobe vfs_read arg1=$arg1:x64 arg2=$arg2:s32 b=+8($arg1):b4@3/32",
    "p:grp/ev kernel_clone @jiffies", "p:grp/ev kernel_clone @jiffies:u64 $comm:string",
    "r:myretprobe vfs_read $retval", "r:myretprobe vfs_read ret=$retval:s32",
    "r10:maxact vfs_read", "p10:bad vfs_read", "r vfs_write", "-:myprobe", "-:kprobes/myprobe",
    "-:myretprobe", "-:grp/ev", "-:maxact", "-:grp/*", "-:*", "f:myfprobe vfs_read",
    "f:fgroup/fev vfs_read%return $retval", "f vfs_write", "f:myfprobe vfs_read count",
    "f:myfprobe vfs_read file->f_flags count:x32", "-:fprobes/myfprobe", "-:fgroup/fev",
    "t:mytp sched_switch prev_pid=prev->pid", "t:tgroup/tp sched_wakeup", "-:tracepoints/mytp",
    "e:myevent sched/sched_switch prev=$prev_pid:u32 next=$next_pid",
    "e:egroup/ev sched.sched_wakeup pid=$pid", "-:eprobes/myevent", "-:egroup/ev",
    "s:latency pid_t pid; u64 lat", "-:synthetic/latency", "# comment line", "",
]
_FUNCS = ["vfs_read", "vfs_write", "schedule", "kernel_clone", "do_sys_openat2", "ksys_read"]
Corpus = dict[str, list[str]]   # control file -> valid commands
CORPUS: Corpus = {
    "dynamic_events": _PROBES,
    "kprobe_events": [c for c in _PROBES if c[:1] in "pr-#" or not c],
    "set_ftrace_filter": [
        *_FUNCS, "vfs_*", "*sched*", "sch?dule", ".schedule", "!vfs_read", "vfs_read vfs_write",
        "schedule:traceoff", "schedule:traceoff:3", "!schedule:traceoff", "!schedule:traceoff:0",
        "schedule:traceon", "kernel_clone:stacktrace", "kernel_clone:stacktrace:2",
        "schedule:enable_event:sched:sched_switch", "schedule:disable_event:sched:sched_switch:2",
        "!schedule:enable_event:sched:sched_switch", "schedule:snapshot", "schedule:dump",
        "schedule:cpudump", "*:mod:ext4", "non_exist_func:mod:non_exist_module", "*lock*", "",
    ],
    "set_ftrace_notrace": [*_FUNCS, "*lock*", "!vfs_read", "vfs_*", ""],
    "set_graph_function": [*_FUNCS, "*lock*", "!schedule", "vfs_read vfs_write", ""],
    "set_graph_notrace": [*_FUNCS, "!schedule", ""],
    "set_event": [
        "sched:sched_switch", "sched:*", "!sched:sched_switch", "sched_wakeup", "sched",
        "!sched:*", "syscalls:sys_enter_openat", "irq:*", "kmem:kmalloc", ":sched_switch", "",
    ],
    "events/sched/sched_switch/filter": [
        "prev_pid == 0", 'prev_comm ~ "bash*"', "next_pid > 10 && prev_pid != 0", "0",
        "common_pid == 1 || prev_prio < 100", "(prev_pid == 1) && !(next_pid == 2)",
        "prev_state & 1", 'next_comm == "swapper/0"', "prev_pid == 0x10",
    ],
    "events/sched/sched_switch/trigger": [
        "traceoff", "traceon:5", "stacktrace if prev_pid == 0", "snapshot", "!traceoff",
        "!traceon", "!stacktrace", "enable_event:sched:sched_wakeup",
        "disable_event:sched:sched_wakeup:1", "!enable_event:sched:sched_wakeup",
        "hist:keys=prev_pid", "hist:keys=next_comm:vals=hitcount:sort=hitcount", "!hist:keys=prev_pid",
    ],
    "events/sched/sched_wakeup/trigger": ["traceoff", "!traceoff", "stacktrace:3 if pid > 1"],
    "trace_options": [
        "print-parent", "noprint-parent", "sym-offset", "nosym-offset", "record-tgid",
        "norecord-tgid", "overwrite", "nooverwrite", "latency-format", "func_stack_trace",
        "nofunc_stack_trace", "funcgraph-proc", "nofuncgraph-proc", "test_nop_accept",
        "test_nop_refuse", "markers", "nomarkers", "hex", "nohex",
    ],
    "current_tracer": ["nop", "function", "function_graph", "blk", "wakeup", "nop"],
    "buffer_size_kb": ["1408", "4", "1", "7", "1410", "100000", "0"],
    "trace_clock": ["local", "global", "counter", "uptime", "perf", "mono", "mono_raw", "boot",
                    "x86-tsc", "tai"],
}
OPTIONS = ["print-parent", "sym-offset", "record-tgid", "overwrite", "hex", "markers",
           "func_stack_trace", "funcgraph-proc", "test_nop_refuse", "event-fork", "bin"]
for _o in OPTIONS:
    CORPUS[f"options/{_o}"] = ["0", "1"]
INSTANCE_NAMES = ["foo", "bar", "baz", "a.b", "x" * 300, "with space", "-", ".x", "..", "."]
INSTANCE_TARGETS = ["set_event", "current_tracer", "trace_options", "trace_clock",
                    "buffer_size_kb", "events/sched/sched_switch/filter",
                    "events/sched/sched_switch/trigger", "set_ftrace_filter"]

_TC_RE = re.compile(r"""^\s*(?:echo\s+(?:-n\s+)?'([^']*)'\s*>>?\s*(\S+)|check_error\s+'([^']*)')""")


def corpus(test_d: Path | None = None) -> Corpus:
    """The built-in corpus, plus every literal single-quoted ``echo '…' > FILE`` and
    ``check_error '…'`` of the ftrace selftests' ``test_d`` when given (a missing
    directory is an error: ask for the selftests only where they are)."""
    out = {target: list(cmds) for target, cmds in CORPUS.items()}
    if test_d is None:
        return out
    if not test_d.is_dir():
        raise FileNotFoundError(f"no ftrace selftests (test.d) at {test_d}")
    for tc in sorted(test_d.rglob("*.tc")):
        for line in tc.read_text(errors="replace").splitlines():
            m = _TC_RE.match(line)
            if not m:
                continue
            if m.group(3) is not None:  # check_error 'p vfs_read ^$foo': ^ marks the error
                text = m.group(3).replace("^", "")
                target = "dynamic_events"
            else:
                text, target = m.group(1), m.group(2)
                target = target.split("}")[-1].split("/", 1)[-1] if "$" in target else target
                if target.startswith("events/") and target.endswith(("/filter", "/trigger")):
                    target = "events/sched/sched_switch/" + target.rsplit("/", 1)[1]
            if target in out and "$" not in text.replace("$arg", "").replace(
                    "$retval", "").replace("$stack", "").replace("$comm", ""):
                out[target].append(text)
    return out


# ------------------------------------------------------------------------------- generator
@dataclass
class Command:
    """One command: ``op`` is "write", "mkdir" or "rmdir"."""

    op: str
    path: str
    chunks: list[bytes] = field(default_factory=list)
    trunc: bool = True
    kind: str = "valid"

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)

    def __repr__(self) -> str:
        d = self.data
        shown = repr(d[:200]) + (f"...(+{len(d) - 200} bytes)" if len(d) > 200 else "")
        return (f"Command({self.op} {self.path} kind={self.kind} trunc={self.trunc} "
                f"writes={len(self.chunks)} data={shown})")


_TOKEN_RE = re.compile(rb"[^\s:/=%,()+@$.!&|<>~\"*^-]+")
_GARBAGE = [b"", b"\x00", b"\xff\xfe", b"%", b"$", b":", b"/", b"(", b")", b"+", b"-", b"=",
            b"@", b"^", b"*", b"!", b"\"", b"'", b"\\", b"&&", b"||", b"~", b"#", b"\n", b"\t",
            b"0x", b"-1", b"18446744073709551616", b"99999999999999999999999", b"\xc3\x28",
            b"%return", b"$retval", b"$arg0", b"$stack999", b"+0(", b":string", b":x128",
            b"[", b"]", b"{", b"}", b";", b" ", b"\r"]


class Generator:
    """Seeded: the same seed gives the same command sequence."""

    def __init__(self, seed: int, commands: Corpus | None = None) -> None:
        self.rng = Random(seed)
        self.corpus = commands if commands is not None else corpus()
        self.targets = sorted(self.corpus)
        self.instances: list[str] = []  # names the generator believes exist

    def _valid(self, target: str | None = None) -> tuple[str, bytes]:
        target = target or self.rng.choice(self.targets)
        return target, self.rng.choice(self.corpus[target]).encode()

    def _break_token(self, data: bytes) -> bytes:
        rng = self.rng
        toks = list(_TOKEN_RE.finditer(data))
        if not toks:
            return data + rng.choice(_GARBAGE)
        m = rng.choice(toks)
        how = rng.randrange(8)
        if how == 0:
            new = rng.choice(_GARBAGE)
        elif how == 1:
            new = b""
        elif how == 2:
            new = m.group() * rng.randint(2, 50)
        elif how == 3:
            new = b"A" * rng.choice([63, 64, 65, 255, 256, 4095, 4096, 5000])
        elif how == 4:
            new = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif how == 5:
            new = m.group() + rng.choice(_GARBAGE)
        elif how == 6:
            other = self._valid()[1]
            new = other.split()[0] if other.split() else b""
        else:
            new = str(rng.choice([0, -1, 1 << 31, 1 << 32, 1 << 64, 10 ** 30])).encode()
        return data[:m.start()] + new + data[m.end():]

    def _mutate_char(self, data: bytes) -> bytes:
        rng = self.rng
        i = rng.randint(0, len(data))
        op = rng.randrange(3)
        if op == 0 or not data:
            return data[:i] + bytes([rng.randrange(256)]) + data[i:]
        i = min(i, len(data) - 1)
        if op == 1:
            return data[:i] + data[i + 1:]
        return data[:i] + bytes([rng.randrange(256)]) + data[i + 1:]

    def _payload(self, target: str) -> tuple[str, bytes]:
        rng = self.rng
        r = rng.random()
        _, valid = self._valid(target)
        if r < 0.25:
            return "valid", valid + b"\n"
        if r < 0.55:
            return "broken-token", self._break_token(valid) + b"\n"
        if r < 0.65:
            return "char-mutation", self._mutate_char(valid) + rng.choice([b"\n", b""])
        if r < 0.72:
            lines = [self._valid(target)[1] for _ in range(rng.randint(2, 6))]
            if rng.random() < 0.5:
                lines[rng.randrange(len(lines))] = self._break_token(rng.choice(lines))
            return "multi-line", b"\n".join(lines) + b"\n"
        if r < 0.79:
            n = rng.choice([4094, 4095, 4096, 4097, 8192, 20000])
            return "overlong-line", (valid + b" " + b"x" * n)[:n] + b"\n"
        if r < 0.85:
            return "binary", rng.randbytes(rng.choice([1, 2, 7, 64, 512, 4096, 5000]))
        if r < 0.89:
            unit = (valid or b"x") + rng.choice([b"\n", b" "])
            size = rng.choice([65536, 200000, 1 << 20])
            if write_class(target) in (WORD, WORD_EVENT):
                # one write(2) a word: 16 KiB of "*:*" is 4,096 calls, each walking every event
                size = WORD_HUGE
            return "huge", (unit * (size // len(unit) + 1))[:size]
        if r < 0.92:
            return "huge-binary", rng.randbytes(rng.choice([65536, 300000]))
        if r < 0.96:
            return "whitespace", rng.choice([b"", b"\n", b" \n", b"\t\t\n", b"\n\n\n",
                                             b"  " + valid + b"  \n", valid + b"\r\n",
                                             valid + b" # comment\n", b"\x00" + valid])
        return "nul-inside", valid.replace(b" ", b"\x00", 1) + b"\n"

    def _split(self, data: bytes) -> list[bytes]:
        """Many small writes on one fd (what ``dd bs=1`` or a buffered writer would do)."""
        if not data or self.rng.random() < 0.85:
            return [data]
        step = max(self.rng.choice([1, 2, 3, 5, 8]), -(-len(data) // 64))
        return [data[i:i + step] for i in range(0, len(data), step)]

    def next(self) -> Command:
        return self._next()

    def _next(self) -> Command:
        rng = self.rng
        r = rng.random()
        if r < 0.04:
            name = rng.choice(INSTANCE_NAMES)
            if rng.random() < 0.5:
                return Command("mkdir", f"instances/{name}", kind="mkdir")
            return Command("rmdir", f"instances/{name}", kind="rmdir")
        target = rng.choice(self.targets)
        path = target
        if r < 0.12 and target.split("/")[0] in INSTANCE_TARGETS or (
                r < 0.12 and target in INSTANCE_TARGETS):
            path = f"instances/{rng.choice(INSTANCE_NAMES[:3])}/{target}"
        kind, data = self._payload(target)
        return Command("write", path, self._split(data), trunc=rng.random() < 0.6, kind=kind)


# ------------------------------------------------------------------------------- drivers
@dataclass
class WriteLog:
    """What one command's writes did: each write(2) call with the bytes it was given and
    the count it returned (the failing call is not in ``calls``), the errno of the
    failing call or of the open (0: none failed), and whether the open failed."""

    calls: list[tuple[bytes, int]] = field(default_factory=list)
    err: int = 0
    open_failed: bool = False
    failed_data: bytes = b""          # what the failing call was given


class Driver(Protocol):
    """Where commands run: the tree layer in process, or a mount through os calls.
    A rejected mkdir/rmdir raises ``KernelError`` (its errno); ``write`` reports each
    write(2) call in a ``WriteLog``."""

    name: str

    def read(self, path: str) -> bytes | None: ...

    def listdir(self, path: str) -> list[str] | None: ...

    def mkdir(self, path: str) -> None: ...

    def rmdir(self, path: str) -> None: ...

    def write(self, path: str, chunks: list[bytes], trunc: bool) -> WriteLog: ...


class _Writer(Protocol):
    """An open file of a driver: write(2) calls, then close(2)."""

    def write(self, data: bytes) -> int: ...

    def close(self) -> None: ...


def write_calls(open_fn: Callable[[], _Writer], chunks: list[bytes]) -> WriteLog:
    """Open, write each chunk as a program does (a short write is followed by a write of
    the rest, as stdio does), close.  A call that returns nothing (0 for a non-empty
    buffer) or more than it was given is reported with that count."""
    log = WriteLog()
    try:
        f = open_fn()
    except KernelError as e:
        log.err, log.open_failed = e.errno, True
        return log
    try:
        for chunk in chunks:
            off = 0
            while off < len(chunk):
                # a file of the mount sees at most MAX_WRITE bytes of a write(2) at a
                # time; the tree driver hands it the same (and a long chunk is not
                # copied again for each word of it)
                data = chunk[off:off + MAX_WRITE]
                try:
                    n = f.write(data)
                except KernelError as e:
                    log.err, log.failed_data = e.errno, data
                    return log
                log.calls.append((data, n))
                if n <= 0 or n > len(data):
                    return log
                off += n
    finally:
        f.close()
    return log


class _TreeWriter:
    def __init__(self, node: File, trunc: bool) -> None:
        self.f = node.open(WRITE_TRUNC if trunc else WRITE_APPEND)
        self.pos = 0

    def write(self, data: bytes) -> int:
        n = self.f.write(self.pos, data)
        self.pos += n
        return n

    def close(self) -> None:
        try:
            self.f.flush()   # once, at close(2), as FUSE sends FLUSH
        finally:
            self.f.release()


class TreeDriver:
    """Runs commands on the tree layer: open, write*, flush, release."""

    name = "tree"

    def __init__(self, root: Dir) -> None:
        self.root = root

    def _walk(self, path: str) -> Node:
        node = self.root
        for part in path.split("/"):
            if not isinstance(node, Dir):
                raise KernelError(errno.ENOTDIR)
            node = node.lookup(part)
            if node is None:
                raise KernelError(errno.ENOENT)
        return node

    def read(self, path: str) -> bytes | None:
        try:
            node = self._walk(path)
        except KernelError:
            return None
        if not isinstance(node, File):
            return None
        f = node.open(READ_ONLY)
        out = bytearray()
        try:
            while True:
                data = f.read(len(out), 65536)
                if isinstance(data, _WouldBlock) or not data:
                    break
                out += data
        except KernelError:
            return None
        finally:
            f.release()
        return bytes(out)

    def listdir(self, path: str) -> list[str] | None:
        try:
            node = self._walk(path)
        except KernelError:
            return None
        return [n for n, _ in node.entries()] if isinstance(node, Dir) else None

    def _parent(self, path: str) -> tuple[Dir, str]:
        parent, name = path.rsplit("/", 1)
        node = self._walk(parent)
        if not isinstance(node, Dir):
            raise KernelError(errno.ENOTDIR)
        return node, name

    def mkdir(self, path: str) -> None:
        parent, name = self._parent(path)
        parent.mkdir(name)

    def rmdir(self, path: str) -> None:
        parent, name = self._parent(path)
        parent.rmdir(name)

    def write(self, path: str, chunks: list[bytes], trunc: bool) -> WriteLog:
        def open_fn() -> _TreeWriter:
            node = self._walk(path)
            if not isinstance(node, File):
                raise KernelError(errno.EISDIR)
            return _TreeWriter(node, trunc)

        return write_calls(open_fn, chunks)


class _OsWriter:
    def __init__(self, path: Path, trunc: bool) -> None:
        self.fd = _os_call(os.open, path, os.O_WRONLY | (os.O_TRUNC if trunc else os.O_APPEND))

    def write(self, data: bytes) -> int:
        return _os_call(os.write, self.fd, data)

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


class MountDriver:
    """Runs commands through a real mount with os calls (OSError = the kernel's errno)."""

    name = "mount"

    def __init__(self, mnt: Path) -> None:
        self.mnt = Path(mnt)

    def read(self, path: str) -> bytes | None:
        try:
            fd = os.open(self.mnt / path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return None
        out = bytearray()
        try:
            while True:
                data = os.read(fd, 65536)
                if not data:
                    break
                out += data
        except OSError:
            return None
        finally:
            os.close(fd)
        return bytes(out)

    def listdir(self, path: str) -> list[str] | None:
        try:
            return sorted(os.listdir(self.mnt / path))
        except OSError:
            return None

    def mkdir(self, path: str) -> None:
        _os_call(os.mkdir, self.mnt / path)

    def rmdir(self, path: str) -> None:
        _os_call(os.rmdir, self.mnt / path)

    def write(self, path: str, chunks: list[bytes], trunc: bool) -> WriteLog:
        return write_calls(lambda: _OsWriter(self.mnt / path, trunc), chunks)


def _os_call(fn: Callable[..., R], *args: object) -> R:
    try:
        return fn(*args)
    except OSError as e:
        if e.errno in (errno.ENOTCONN, errno.ECONNABORTED):
            raise  # the mount died: a bug, not a rejected command
        raise KernelError(e.errno) from None


# ------------------------------------------------------------------------------- the model
# How each control file's 6.12 write handler parses one write(2) (docs/write-semantics.md):
#   word-event  ftrace_event_write: trace_get_user() on a fresh parser, the word applied
#               even when no blank ends it
#   word        ftrace_regex_write / ftrace_graph_write: the open file's parser (a word
#               split over writes continues), applied once a blank ends it
#   lines       trace_parse_run_command(): the lines before a failing line stand
#   filter      apply_event_filter(): a failing filter replaces the filter (disabled,
#               showing its error)
#   whole       everything else: the whole buffer, the full count or nothing
WORD_EVENT, WORD, LINES, FILTER, WHOLE = "word-event", "word", "lines", "filter", "whole"
EVENT_BUF_SIZE = 128          # EVENT_BUF_SIZE + 1
FTRACE_BUFF_MAX = 670         # KSYM_SYMBOL_LEN + 4
_BLANK = frozenset(b"\t\n\v\f\r \xa0")


def instance_head(path: str) -> str:
    """``instances/NAME/`` for a path inside an instance, else "" (the top level)."""
    parts = path.split("/", 2)
    return f"instances/{parts[1]}/" if parts[0] == "instances" and len(parts) > 2 else ""


def write_class(path: str) -> str:
    base = path[len(instance_head(path)):]
    if base == "set_event":
        return WORD_EVENT
    if base in ("set_ftrace_filter", "set_ftrace_notrace", "set_graph_function",
                "set_graph_notrace", "stack_trace_filter"):
        return WORD
    if base in ("dynamic_events", "kprobe_events", "uprobe_events", "synthetic_events"):
        return LINES
    if base.startswith("events/") and base.endswith("/filter"):
        return FILTER
    return WHOLE


@dataclass
class ParserModel:
    """``struct trace_parser`` as the fuzzer expects it to behave (written from
    trace_get_user(), independently of the simulator's TraceParser)."""

    size: int
    cont: bool = False
    fail: bool = False
    idx: int = 0

    def get_user(self, data: bytes) -> tuple[int, bool]:
        """One trace_get_user(): (bytes read, a word is loaded); (-1, False) when the
        word does not fit (EINVAL, the parser failed for good)."""
        read = 0
        ch = data[0]
        read = 1
        if not self.cont:
            while read < len(data) and ch in _BLANK:
                ch = data[read]
                read += 1
            self.idx = 0
            if ch in _BLANK or ch == 0:
                return read, False
        while read < len(data) and ch not in _BLANK and ch != 0:
            if self.idx >= self.size - 1:
                self.fail = True
                return -1, False
            self.idx += 1
            ch = data[read]
            read += 1
        if ch in _BLANK or ch == 0:
            self.cont = False
        elif self.idx < self.size - 1:
            self.cont = True
            self.idx += 1
        else:
            self.fail = True
            return -1, False
        return read, not self.fail and self.idx != 0


def check_returns(cls: str, log: WriteLog) -> str | None:
    """What is wrong with the counts of ``log``'s write(2) calls, or None: a word file
    returns exactly what trace_get_user() reads and fails only on a word it applies (or
    one that does not fit); the others take the whole buffer."""
    if cls not in (WORD, WORD_EVENT):
        for data, n in log.calls:
            if n != len(data):
                return f"returned {n} for {len(data)} bytes"
        return None
    size = EVENT_BUF_SIZE if cls == WORD_EVENT else FTRACE_BUFF_MAX
    parser = ParserModel(size)
    calls = list(log.calls)
    if log.err and not log.open_failed:
        calls.append((log.failed_data, -1))
    for data, n in calls:
        if cls == WORD_EVENT:
            parser = ParserModel(size)      # ftrace_event_write(): a parser per call
        read, loaded = parser.get_user(data)
        # ftrace_event_write() applies a loaded word; ftrace_regex_write() a finished one
        applies = loaded and (cls == WORD_EVENT or not parser.cont)
        if n < 0:
            if read >= 0 and not applies:
                return f"a write failed with no word to fail on: {data[:60]!r}"
        elif read < 0:
            return f"an overlong word was accepted ({n} of {len(data)} bytes)"
        elif n != read:
            return f"returned {n} where trace_get_user() reads {read} of {data[:60]!r}"
        if applies:
            parser.idx = 0                  # trace_parser_clear()
    return None


# ------------------------------------------------------------------------------- checker
GLOBAL_SNAPSHOT = [
    "dynamic_events", "kprobe_events", "uprobe_events", "synthetic_events", "set_ftrace_filter",
    "set_ftrace_notrace", "set_graph_function", "set_graph_notrace", "set_event",
    "current_tracer", "trace_options", "trace_clock", "buffer_size_kb",
    "events/sched/sched_switch/filter", "events/sched/sched_switch/trigger",
    "events/sched/sched_switch/enable", "events/sched/sched_wakeup/trigger",
    "events/sched/sched_wakeup/enable", *(f"options/{o}" for o in OPTIONS),
]
INSTANCE_SNAPSHOT = ["set_event", "current_tracer", "trace_options", "trace_clock",
                     "buffer_size_kb", "events/sched/sched_switch/filter",
                     "events/sched/sched_switch/trigger", "events/sched/sched_switch/enable",
                     "set_ftrace_filter"]
# error_log is never snapshotted: tracing_log_err() appends to it on the very rejections we
# provoke.  enabled_functions is derived from the snapshotted filter/tracer/probe files and
# costs ~0.1 s to print with the function tracer on every function.  tracing_on and
# trace/trace_pipe are not control state the writes target.
_COUNT_RE = re.compile(rb"count=\d+|:unlimited|:\d+(?=\n| )")


# what an enable_event/disable_event trigger or function probe switches: SYSTEM:EVENT
_SWITCH_TARGET = re.compile(rb"(?:enable|disable)_event:([^:\s\[]+):([^:\s\[]+)")


def _normalize_soft_mode(snap: Snapshot, switched: set[tuple[str, str, str]]) -> None:
    """An event in soft mode (``enable`` reads ``0*`` or ``1*``) is switched by an
    enable_event/disable_event trigger each time the trigger's event fires, which the
    background workload does at its own pace: activity, not state.  So is one such a
    trigger switched before it was removed (``switched``: (instance path, system, event)
    named by a command that took effect since the last reset): when the trigger goes,
    the event stays as its last firing left it.
    Its enable file reads ``?*`` and its line in the same array's ``set_event`` is left
    out."""
    for path, data in list(snap.items()):
        if not (isinstance(data, bytes) and path.endswith("/enable")):
            continue
        head, _, rest = path.partition("events/")
        system, _, event = rest.removesuffix("/enable").partition("/")
        if data not in (b"0*\n", b"1*\n") and (head, system, event) not in switched:
            continue
        snap[path] = b"?*\n"
        set_event = head + "set_event"
        listed = snap.get(set_event)
        if isinstance(listed, bytes):
            line = f"{system}:{event}\n".encode()
            snap[set_event] = b"".join(ln for ln in listed.splitlines(keepends=True) if ln != line)


@dataclass
class Finding:
    kind: str  # "crash", "hang", "state-change", "bad-return", "twin-diverged"
    cmd: Command
    detail: str

    def __str__(self) -> str:
        return f"[{self.kind}] {self.cmd!r}\n    {self.detail}"


class Hang(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang()


@dataclass
class Stats:
    commands: int = 0
    rejected: int = 0
    accepted: int = 0
    bytes: int = 0
    writes: int = 0            # write(2) calls
    short: int = 0             # of them, short counts (one word of more)
    kept: int = 0              # rejected commands whose earlier writes/lines stood
    kinds: dict[str, int] = field(default_factory=dict)
    errnos: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


Snapshot = dict[str, bytes | list[str] | None]


class Fuzzer:
    """Drive ``Generator`` commands into ``driver`` and record ``Finding``s.

    The expected state after a command is computed by running it on ``twin``, a second
    machine that started identical (same seed) and gets every command too, but only
    what 6.12 keeps of a failing one: the write(2) calls before the failing call (one
    word each on the word files), plus, on the line parsers (dynamic_events…), the
    failing call's lines before its failing line, and on the filter files the failing
    call itself (apply_event_filter swaps the failed filter in).  A failing command must
    leave ``driver`` in the twin's state; the counts of its write(2) calls must be
    trace_get_user()'s (``check_returns``)."""

    def __init__(self, driver: Driver, seed: int, twin: Driver, reset_every: int = 150,
                 normalize_counts: bool = True, commands: Corpus | None = None) -> None:
        self.driver = driver
        self.twin = twin
        self.gen = Generator(seed, commands)
        self.findings: list[Finding] = []
        self.stats = Stats()
        self.reset_every = reset_every
        self.normalize_counts = normalize_counts  # trigger counters tick with the workload: activity, not state
        self.last: Command | None = None
        self.big = False
        self.diverged = False   # the twin's state differs: comparisons wait for a reset
        # events an enable_event/disable_event trigger or probe may have switched since
        # the last reset: (instance path, system, event) named by a command that took
        # effect (a write(2) of it succeeded)
        self.switched: set[tuple[str, str, str]] = set()

    def snapshot(self, driver: Driver) -> Snapshot:
        snap: Snapshot = {}
        insts = driver.listdir("instances") or []
        snap["instances/"] = insts
        paths = list(GLOBAL_SNAPSHOT)
        for name in insts:
            paths += [f"instances/{name}/{p}" for p in INSTANCE_SNAPSHOT]
        size = 0
        for p in paths:
            data = driver.read(p)
            if data is not None and self.normalize_counts:
                data = _COUNT_RE.sub(b"#", data)
            snap[p] = data
            size += len(data) if data is not None else 0
        if self.normalize_counts:
            _normalize_soft_mode(snap, self.switched)
        # a filter of every function (43k lines, with probes) makes each snapshot cost
        # a second: bring the state back to small before the next command
        self.big = size > BIG_SNAPSHOT
        return snap

    def reset(self) -> None:
        """Bring both machines back to small, so snapshots stay cheap (errors are
        ignored); a diverged twin is compared again after it."""
        for d in (self.driver, self.twin):
            self._reset(d)
        self.switched.clear()    # set_event emptied, the triggers and probes removed
        if self.diverged and _differences(self.snapshot(self.driver), self.snapshot(self.twin)) == []:
            self.diverged = False
        self.big = False

    def _reset(self, d: Driver) -> None:
        for path, data in [("current_tracer", b"nop\n"), ("set_event", b"\n"),
                           ("events/sched/sched_switch/filter", b"0\n")]:
            d.write(path, [data], True)
        for p in ("events/sched/sched_switch/trigger", "events/sched/sched_wakeup/trigger"):
            for line in (d.read(p) or b"").decode(errors="replace").splitlines():
                if line and not line.startswith("#"):
                    d.write(p, [b"!" + line.split(" [")[0].split(":count=")[0].split(
                        ":unlimited")[0].encode() + b"\n"], False)
        # function probes (func:traceoff, :enable_event:...) survive an O_TRUNC of
        # set_ftrace_filter: remove each command from every function ("!*:cmd[:args]",
        # and with a count for counted probes, as ftracetest's reset_ftrace_filter does)
        probes = set()
        for line in (d.read("set_ftrace_filter") or b"").decode(errors="replace").splitlines():
            parts = line.split(":")
            if len(parts) > 1 and not line.startswith("#"):
                rest = [x for x in parts[1:] if x != "unlimited" and not x.startswith("count=")
                        and not x.isdigit()]
                probes.add(":".join(rest))
        for cmd in sorted(probes):
            # a counted probe has its own ops: removing it needs a count too
            for text in (f"!*:{cmd}\n", f"!*:{cmd}:0\n"):
                d.write("set_ftrace_filter", [text.encode()], False)
        for f in ("set_ftrace_filter", "set_ftrace_notrace", "set_graph_function",
                  "set_graph_notrace", "dynamic_events"):
            d.write(f, [b""], True)
        for name in d.listdir("instances") or []:
            try:
                d.rmdir(f"instances/{name}")
            except KernelError:
                pass

    def _expected(self, cmd: Command, log: WriteLog) -> WriteLog:
        """Run on the twin what 6.12 keeps of ``cmd``, given what it did on the driver:
        each write(2) that succeeded, as the bytes it consumed, then by the file's class
        what a failing call keeps."""
        cls = write_class(cmd.path)
        keep = [data[:n] for data, n in log.calls]
        if log.err and not log.open_failed:
            data = log.failed_data
            if cls == WORD:
                # the start of the word the failing call finished (a word split over
                # writes) is part of the failing word: the release applies nothing of it
                parser = ParserModel(FTRACE_BUFF_MAX)
                done = 0
                for i, part in enumerate(keep):
                    parser.get_user(part)
                    if not parser.cont:
                        done = i + 1
                        parser.idx = 0
                keep = keep[:done]
            elif cls == FILTER:
                keep.append(data)
            elif cls == LINES:
                # trace_parse_run_command(): line after line; a NUL ends the input with an
                # error (the partial line before it does not run)
                nul = data.find(b"\0")
                lines = (data if nul < 0 else data[:nul]).split(b"\n")
                tail = lines.pop()
                keep += [line + b"\n" for line in lines]
                if nul < 0 and tail:
                    keep.append(tail)
        return self.twin.write(cmd.path, keep, cmd.trunc)

    def run_one(self, cmd: Command) -> None:
        st = self.stats
        st.commands += 1
        st.kinds[cmd.kind] = st.kinds.get(cmd.kind, 0) + 1
        st.bytes += len(cmd.data)
        log, err = WriteLog(), 0
        old = signal.signal(signal.SIGALRM, _alarm) if self.driver.name == "tree" else None
        if old is not None:
            signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
        t0 = time.monotonic()
        try:
            if cmd.op == "mkdir":
                self.driver.mkdir(cmd.path)
            elif cmd.op == "rmdir":
                self.driver.rmdir(cmd.path)
            else:
                log = self.driver.write(cmd.path, cmd.chunks, cmd.trunc)
                err = log.err
        except KernelError as e:
            err = e.errno
        except Hang:
            self.findings.append(Finding("hang", cmd, f"> {HANG_SECONDS} s"))
            self.diverged = True
            return
        except Exception as e:  # noqa: BLE001 - any other exception is the bug we hunt
            self.findings.append(Finding("crash", cmd, f"{type(e).__name__}: {e}"))
            self.diverged = True
            return
        finally:
            if old is not None:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old)
        if time.monotonic() - t0 > HANG_SECONDS:
            self.findings.append(Finding("hang", cmd, f"took {time.monotonic() - t0:.1f} s"))
        if not err or log.calls:
            head = instance_head(cmd.path)     # the instance whose events it may switch
            self.switched.update((head, m[1].decode(errors="replace"), m[2].decode(errors="replace"))
                                 for m in _SWITCH_TARGET.finditer(cmd.data))
        st.writes += len(log.calls) + (1 if log.err and not log.open_failed else 0)
        st.short += sum(1 for data, n in log.calls if n < len(data))
        bad = check_returns(write_class(cmd.path), log) if cmd.op == "write" else None
        if bad is not None:
            self.findings.append(Finding("bad-return", cmd, bad))
        # the twin: the same command, or what 6.12 keeps of it
        twin_err = 0
        if cmd.op == "write":
            expected = self._expected(cmd, log)
            twin_err = expected.err
            if err and expected.calls:
                st.kept += 1
        else:
            try:
                (self.twin.mkdir if cmd.op == "mkdir" else self.twin.rmdir)(cmd.path)
            except KernelError as e:
                twin_err = e.errno
        if not err:
            st.accepted += 1
            if twin_err and not self.diverged:
                self.findings.append(Finding("twin-diverged", cmd, f"the twin failed with "
                                             f"{errno.errorcode.get(twin_err, twin_err)}"))
                self.diverged = True
            return
        st.rejected += 1
        name = errno.errorcode.get(err, str(err))
        st.errnos[name] = st.errnos.get(name, 0) + 1
        if self.diverged:
            return
        after, expected = self.snapshot(self.driver), self.snapshot(self.twin)
        changed = _differences(after, expected)
        if changed:
            k = changed[0]
            self.findings.append(Finding(
                "state-change", cmd,
                f"{name}; differs from 6.12's model in {changed}: {k}: expected "
                f"{_short(expected.get(k))}, got {_short(after.get(k))}"))
            self.diverged = True

    def step(self, i: int) -> None:
        """The ``i``-th command of a run (a reset first every ``reset_every``)."""
        if i and (i % self.reset_every == 0 or self.big):
            self.reset()
        self.last = self.gen.next()
        self.run_one(self.last)

    def run(self, n: int, deadline: float | None = None) -> Iterator[int]:
        """Run ``n`` commands (or until ``deadline``, time.monotonic()); yields progress."""
        t0 = time.monotonic()
        for i in range(n):
            if deadline is not None and time.monotonic() > deadline:
                break
            self.step(i)
            if i % 1000 == 999:
                yield i + 1
        self.stats.seconds += time.monotonic() - t0


def _differences(a: Snapshot, b: Snapshot) -> list[str]:
    """The keys whose values differ; tracing_update_buffers() runs before a handler
    parses (event_enable_write, ftrace_event_write, tracing_set_tracer…): the boot-time
    minimal buffer ("7 (expanded: 1408)") may be expanded on one side only."""
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if va == vb:
            continue
        if k.endswith("buffer_size_kb") and b"expanded" in ((va or b"") if isinstance(va, bytes) else b"") + (
                (vb or b"") if isinstance(vb, bytes) else b""):
            continue
        out.append(k)
    return out


def _short(v: object) -> str:
    r = repr(v)
    return r if len(r) < 300 else r[:300] + "..."


def dedupe(findings: list[Finding]) -> dict[tuple[str, str, str], list[Finding]]:
    """Group findings by (kind, target file, first line of detail without data)."""
    groups: dict[tuple[str, str, str], list[Finding]] = {}
    for f in findings:
        base = re.sub(r"instances/[^/]+/", "instances/*/", f.cmd.path)
        detail = f.detail.split(":")[0] if f.kind == "state-change" else f.detail[:80]
        groups.setdefault((f.kind, base, detail), []).append(f)
    return groups


# ------------------------------------------------------------------------------- mounts
def kill_on_hang(proc: subprocess.Popen) -> None:
    """What a MountDriver does on a hang: kill the server, so the blocked syscall returns
    ENOTCONN instead of pinning the fuzzer forever."""
    if proc.poll() is None:
        proc.kill()


def run_mount_commands(fuzzer: Fuzzer, proc: subprocess.Popen, n: int,
                       deadline: float | None = None) -> None:
    """``fuzzer.run`` with a watchdog: a command that takes ``HANG_SECONDS`` kills ``proc``."""
    state = {"i": 0, "seen": -1}
    stop = threading.Event()

    def watchdog() -> None:
        while not stop.wait(HANG_SECONDS):
            if state["i"] == state["seen"]:
                fuzzer.findings.append(Finding("hang", fuzzer.last or Command("?", "?"),
                                               f"mount: no progress in {HANG_SECONDS} s"))
                kill_on_hang(proc)
                return
            state["seen"] = state["i"]

    t = threading.Thread(target=watchdog, daemon=True)
    t.start()
    try:
        for i in range(n):
            if deadline is not None and time.monotonic() > deadline:
                break
            if proc.poll() is not None:
                fuzzer.findings.append(Finding("crash", fuzzer.last or Command("?", "?"),
                                               f"mount server exited ({proc.returncode})"))
                break
            try:
                fuzzer.step(i)
            except OSError as e:  # ENOTCONN/ECONNABORTED: the mount died under this command
                fuzzer.findings.append(Finding("crash", fuzzer.last, f"mount died: {e}"))
                break
            state["i"] += 1
    finally:
        stop.set()
