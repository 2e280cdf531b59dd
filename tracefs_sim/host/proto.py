"""The tracer's wire format (docs/host-tracing.md, "Wire format"): constants, the decoder
of the tracer's records and the encoders of the server's control messages.

Every message is a 24-byte header (len, type, flags, tid, cpu, ts) and a payload; ``len``
counts both and is a multiple of 8.  Little-endian, over a SOCK_STREAM socketpair, so a
read may end inside a message: :class:`StreamDecoder` keeps the tail.

The server decodes ~40k records/s while the simulated kernel does the real work, so the
decoder does one ``unpack_from`` per record on the receive buffer and builds one
slotted dataclass (captured bytes are the only copies).  The records' classes follow
the header: every message names a thread (``Message``), most also its thread group
(``TaskMessage``).  tracer.c is the other half of this file: change both together.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

# ---------------------------------------------------------------- message types
SYS_ENTER = 1
SYS_EXIT = 2
NEW_TASK = 3
EXEC = 4
EXIT = 5
SIGNAL = 6
GONE = 7
ATTACHED = 8
COMM = 9
INTERRUPTED = 10
FAULTS = 11
MAPS = 12
ACK = 64
MODE = 128
CAPTURE = 129

# MODE payload
MODE_LIFECYCLE = 0   # PTRACE_CONT: fork/exec/exit/signal stops only
MODE_SYSCALLS = 1    # PTRACE_SYSCALL: every syscall entry and exit too

HDR_COMPAT = 1       # header flag of SYS_ENTER/SYS_EXIT: an i386 syscall (int 0x80), i386-numbered
SWITCHES_UNKNOWN = 0xFFFFFFFF   # SYS_EXIT: no schedstat comparison (entry not seen, unreadable)

# NEW_TASK event (the PTRACE_EVENT_* number of the parent's stop)
EVENT_UNKNOWN = 0    # the parent's event was lost (it was killed creating the task)
EVENT_FORK = 1
EVENT_VFORK = 2
EVENT_CLONE = 3

TASK_COMM_LEN = 16
MAX_CAPTURE = 4096   # bytes of one capture (PATH_MAX; a longer C string is cut there)


class CaptureKind(IntEnum):
    """How the tracer reads one syscall argument's memory at the entry stop."""
    CSTRING = 1   # up to the NUL (not included), at most MAX_CAPTURE bytes
    BUFFER = 2    # param = index of the argument holding the length (at most MAX_CAPTURE)
    FIXED = 3     # param = the size
    OUT = 4       # param = the size, read at the exit stop when the syscall returned >= 0
    SOCKNAME = 5  # param = the size: getsockname() of the fd argument, at the exit stop (>= 0)


class ProtocolError(Exception):
    """The byte stream is not a sequence of well-formed messages."""


# ---------------------------------------------------------------- records
class Capture(NamedTuple):
    argidx: int
    kind: int
    data: bytes


@dataclass(slots=True)
class Message:
    """The header of a message about a task: when, on which CPU, which thread."""
    ts: int
    cpu: int
    tid: int


@dataclass(slots=True)
class TaskMessage(Message):
    """A message about thread ``tid`` of thread group ``tgid``, the payload's first word
    (all but NEW_TASK and EXEC, whose payloads name more than one task, and ACK)."""
    tgid: int


@dataclass(slots=True)
class SysEnter(TaskMessage):
    nr: int
    args: tuple[int, int, int, int, int, int]
    caps: tuple[Capture, ...]   # only the captures that could be read (a fault leaves one out)
    compat: bool = False        # an i386 syscall (int 0x80): nr is i386's


@dataclass(slots=True)
class SysExit(TaskMessage):
    nr: int
    ret: int
    caps: tuple[Capture, ...] = ()   # the OUT captures (outputs the syscall wrote)
    asleep_ns: int = 0          # since the entry stop: ns neither running nor runnable
    switches: int = SWITCHES_UNKNOWN   # times switched back in besides the entry stop's resume
    compat: bool = False


@dataclass(slots=True)
class Interrupted(TaskMessage):
    """The switch to syscalls mode stopped the task on its way out of syscall ``nr``
    (its entry not reported): ``ret`` is what it returns, an -ERESTART* code when it
    will resume the syscall after the stop."""
    nr: int
    ret: int


@dataclass(slots=True)
class NewTask(Message):
    """``tid`` is the parent (the task that made the clone/fork/vfork)."""
    child_tid: int
    child_tgid: int
    event: int          # EVENT_FORK/VFORK/CLONE, EVENT_UNKNOWN
    clone_flags: int
    comm: str
    child_cpu: int = 0  # the CPU wake_up_new_task() put the child on


@dataclass(slots=True)
class Exec(Message):
    """``tid`` is the task after exec (== tgid)."""
    old_tid: int        # != tid when a non-leader thread exec'd: it took over tid, the old leader is gone
    tgid: int
    comm: str
    filename: str       # bprm->filename (AT_EXECFN), as sched_process_exec prints it


@dataclass(slots=True)
class Exit(TaskMessage):
    status: int         # wait status (PTRACE_EVENT_EXIT's message)
    group: bool         # the whole thread group exits


@dataclass(slots=True)
class Signal(TaskMessage):
    signo: int
    errno: int
    code: int
    pid: int
    uid: int


@dataclass(slots=True)
class Gone(TaskMessage):
    status: int         # the final wait status


@dataclass(slots=True)
class Attached(TaskMessage):
    comm: str


@dataclass(slots=True)
class Comm(TaskMessage):
    comm: str           # the task's new comm (prctl(PR_SET_NAME), /proc/TID/comm)


@dataclass(slots=True)
class Faults(TaskMessage):
    """The task took ``minflt`` minor and ``majflt`` major page faults since its last
    report (/proc/TID/stat fields 10 and 12 at this stop; comes before the stop's record)."""
    minflt: int
    majflt: int


@dataclass(slots=True)
class Maps(TaskMessage):
    """/proc/TGID/maps of a new image at its exec stop (comes before its Exec)."""
    text: str


@dataclass(slots=True)
class Ack:
    seq: int


Record = (SysEnter | SysExit | NewTask | Exec | Exit | Signal | Gone | Attached | Comm | Interrupted
          | Faults | Maps | Ack)

# ---------------------------------------------------------------- layouts
HEADER = struct.Struct("<IHHIIQ")                      # len, type, flags, tid, cpu, ts
_LEN_TYPE = struct.Struct("<IH")
_SYS_ENTER = struct.Struct("<IHHIIQ" "Q6QII")           # nr, args[6], tgid, ncaps
_CAP = struct.Struct("<BBHI")                           # argidx, kind, 0, len
_SYS_EXIT = struct.Struct("<IHHIIQ" "QqIIQII")          # nr, ret, tgid, ncaps, asleep_ns, switches, 0
_INTERRUPTED = struct.Struct("<IHHIIQ" "IIQq")          # tgid, 0, nr, ret
_NEW_TASK = struct.Struct("<IHHIIQ" "IIIIQ16sII")       # parent, child, child_tgid, event, flags, comm, child_cpu, 0
_EXEC = struct.Struct("<IHHIIQ" "II16sII")              # old_tid, tgid, comm, filename_len, 0
_EXIT = struct.Struct("<IHHIIQ" "IiII")                 # tgid, status, group, 0
_SIGNAL = struct.Struct("<IHHIIQ" "IiiiII")             # tgid, signo, errno, code, pid, uid
_GONE = struct.Struct("<IHHIIQ" "Ii")                   # tgid, status
_COMM = struct.Struct("<IHHIIQ" "II16s")                # tgid, 0, comm (ATTACHED too)
_FAULTS = struct.Struct("<IHHIIQ" "IIII")               # tgid, minflt, majflt, 0
_MAPS = struct.Struct("<IHHIIQ" "II")                   # tgid, len
_ACK = struct.Struct("<IHHIIQ" "II")                    # seq, 0
_MODE = struct.Struct("<IHHIIQ" "II")                   # mode, seq
_CAPTURE_HEAD = struct.Struct("<IHHIIQ" "II")           # n, 0
_CAPTURE_SPEC = struct.Struct("<HBBI")                  # nr, argidx, kind, param


def _comm(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _caps(buf: bytes | bytearray | memoryview, off: int, ncaps: int, end: int) -> tuple[Capture, ...]:
    got = []
    for _ in range(ncaps):
        argidx, kind, _z, n = _CAP.unpack_from(buf, off)
        off += _CAP.size
        got.append(Capture(argidx, kind, bytes(buf[off:off + n])))
        off += (n + 7) & ~7
    if off > end:
        raise ProtocolError(f"captures overrun the message ending at offset {end}")
    return tuple(got)


def decode(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[list[Record], int]:
    """The complete messages of ``buf`` from ``pos`` on, and the offset after the last one."""
    out: list[Record] = []
    append = out.append
    end = len(buf)
    while end - pos >= HEADER.size:
        length, typ = _LEN_TYPE.unpack_from(buf, pos)
        if length < HEADER.size or length & 7:
            raise ProtocolError(f"message length {length} at offset {pos}")
        if end - pos < length:
            break
        if typ == SYS_EXIT:
            (_l, _t, flags, tid, cpu, ts, nr, ret, tgid, ncaps, asleep, switches,
             _z) = _SYS_EXIT.unpack_from(buf, pos)
            caps: tuple[Capture, ...] = _caps(buf, pos + _SYS_EXIT.size, ncaps, pos + length) if ncaps else ()
            append(SysExit(ts, cpu, tid, tgid, nr, ret, caps, asleep, switches, bool(flags & HDR_COMPAT)))
        elif typ == SYS_ENTER:
            (_l, _t, flags, tid, cpu, ts, nr, a0, a1, a2, a3, a4, a5, tgid,
             ncaps) = _SYS_ENTER.unpack_from(buf, pos)
            caps = _caps(buf, pos + _SYS_ENTER.size, ncaps, pos + length) if ncaps else ()
            append(SysEnter(ts, cpu, tid, tgid, nr, (a0, a1, a2, a3, a4, a5), caps,
                            bool(flags & HDR_COMPAT)))
        elif typ == INTERRUPTED:
            _l, _t, _f, tid, cpu, ts, tgid, _z, nr, ret = _INTERRUPTED.unpack_from(buf, pos)
            append(Interrupted(ts, cpu, tid, tgid, nr, ret))
        elif typ == NEW_TASK:
            (_l, _t, _f, tid, cpu, ts, _p, child, ctgid, event, flags, comm, ccpu,
             _z) = _NEW_TASK.unpack_from(buf, pos)
            append(NewTask(ts, cpu, tid, child, ctgid, event, flags, _comm(comm), ccpu))
        elif typ == EXEC:
            _l, _t, _f, tid, cpu, ts, old, tgid, comm, n, _z = _EXEC.unpack_from(buf, pos)
            off = pos + _EXEC.size
            name = bytes(buf[off:off + n]).decode("utf-8", "surrogateescape")
            append(Exec(ts, cpu, tid, old, tgid, _comm(comm), name))
        elif typ == EXIT:
            _l, _t, _f, tid, cpu, ts, tgid, status, group, _z = _EXIT.unpack_from(buf, pos)
            append(Exit(ts, cpu, tid, tgid, status, bool(group)))
        elif typ == SIGNAL:
            _l, _t, _f, tid, cpu, ts, tgid, signo, err, code, spid, suid = _SIGNAL.unpack_from(buf, pos)
            append(Signal(ts, cpu, tid, tgid, signo, err, code, spid, suid))
        elif typ == GONE:
            _l, _t, _f, tid, cpu, ts, tgid, status = _GONE.unpack_from(buf, pos)
            append(Gone(ts, cpu, tid, tgid, status))
        elif typ == ATTACHED or typ == COMM:
            _l, _t, _f, tid, cpu, ts, tgid, _z, comm = _COMM.unpack_from(buf, pos)
            append((Attached if typ == ATTACHED else Comm)(ts, cpu, tid, tgid, _comm(comm)))
        elif typ == FAULTS:
            _l, _t, _f, tid, cpu, ts, tgid, mn, mj, _z = _FAULTS.unpack_from(buf, pos)
            append(Faults(ts, cpu, tid, tgid, mn, mj))
        elif typ == MAPS:
            _l, _t, _f, tid, cpu, ts, tgid, n = _MAPS.unpack_from(buf, pos)
            off = pos + _MAPS.size
            append(Maps(ts, cpu, tid, tgid, bytes(buf[off:off + n]).decode("utf-8", "surrogateescape")))
        elif typ == ACK:
            append(Ack(_ACK.unpack_from(buf, pos)[6]))
        else:
            raise ProtocolError(f"unknown message type {typ} at offset {pos}")
        pos += length
    return out, pos


class StreamDecoder:
    """Records from a byte stream delivered in arbitrary pieces."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes | bytearray | memoryview) -> list[Record]:
        if self._buf:
            self._buf += data
            records, used = decode(self._buf)
            del self._buf[:used]
            return records
        records, used = decode(data)
        if used < len(data):
            self._buf += data[used:]
        return records

    @property
    def pending(self) -> int:
        """Bytes of an incomplete message kept for the next feed()."""
        return len(self._buf)


# ---------------------------------------------------------------- control messages
def encode_mode(mode: int, seq: int) -> bytes:
    """MODE: the tracer resumes tracees in ``mode`` and answers ACK(seq)."""
    return _MODE.pack(_MODE.size, MODE, 0, 0, 0, 0, mode, seq)


def encode_capture(specs: list[tuple[int, int, int, int]]) -> bytes:
    """CAPTURE: (nr, argidx, kind, param) for each argument the tracer copies at syscall entry."""
    body = b"".join(_CAPTURE_SPEC.pack(*s) for s in specs)
    size = _CAPTURE_HEAD.size + len(body)
    return _CAPTURE_HEAD.pack(size, CAPTURE, 0, 0, 0, 0, len(specs), 0) + body
