"""Which syscall arguments the tracer copies out of a tracee's memory at the entry stop.

A pointer argument is only an address once the syscall has returned (the memory may be
reused or unmapped), so what the simulated kernel must read from user memory — the
pathname ``+0($arg2):ustring`` fetches on do_sys_openat2, the filename sched_process_exec
prints, the sockaddr of a connect, the handler of an rt_sigaction — is captured at the
entry stop.  The table is derived from the reference kernel's argument types and names
(:mod:`tracefs_sim.kernel.syscall_table`), not listed by hand per syscall:

* a ``struct sockaddr *`` or ``char *`` argument followed by its length (``addrlen``,
  ``optlen``, ``len``) is a buffer: of that length when the length is a plain ``int`` (bind,
  connect, sendto's destination, setsockopt's value, sethostname's name, which is not
  NUL-terminated), an output when it is an ``int *`` (getsockopt, recvfrom);
* any other ``char *`` argument is a C string (pathnames, names, types), except the data
  buffers and addresses named below;
* a few input structs of fixed size are worth having whole: rt_sigaction's ``act``, the
  signal masks of rt_sigprocmask/rt_sigsuspend, the siginfo of rt_(tg)sigqueueinfo, the
  sleep request of nanosleep/clock_nanosleep, setitimer's new value, the timeouts of
  ppoll/pselect6/select/epoll_pwait2, clone3's ``clone_args`` and openat2's
  ``open_how`` (buffers of the size argument, as copy_struct_from_user reads them).

Output pointers (read's buffer, stat's statbuf, accept's sockaddr) hold nothing at entry
and are not captured there; neither is write's data (its length is the count register).
The few outputs the model needs are read at the exit stop (``OUT``): the two file
descriptors pipe/pipe2/socketpair wrote, so the model knows which fds the pipe is, the
head of a stat buffer (inode number, mode, link count, size: what the VM's 9P server would
say of the file) and the address getsockname() wrote.  The port a bind to port 0 or an
autobind gave a socket is in no user memory: the tracer asks the socket itself at the exit
stop (``SOCKNAME``).
"""

from __future__ import annotations

from typing import NamedTuple

from ..kernel.syscall_table import SyscallTable
from .proto import CaptureKind

# char * arguments that are data (in or out) or addresses, never captured
DATA_ARGS = frozenset({"buf", "ubuf", "list", "u_msg_ptr", "cmdline_ptr", "shmaddr"})
STRING_TYPES = frozenset({"const char *", "char *"})
BUFFER_TYPES = frozenset({"struct sockaddr *", "char *"})
LENGTH_NAMES = frozenset({"addrlen", "addr_len", "optlen", "len"})
# (syscall, argument) → bytes of a fixed-size input struct (x86_64 layouts)
FIXED_SIZES = {
    ("rt_sigaction", "act"): 32,        # struct sigaction: handler, flags, restorer, mask
    ("nanosleep", "rqtp"): 16,          # struct __kernel_timespec
    ("clock_nanosleep", "rqtp"): 16,
    ("rt_sigprocmask", "nset"): 8,      # sigset_t (the kernel's: 64 signals)
    ("rt_sigsuspend", "unewset"): 8,
    ("rt_sigqueueinfo", "uinfo"): 16,   # siginfo_t's si_signo, si_errno, si_code, si_pid
    ("rt_tgsigqueueinfo", "uinfo"): 16,
    ("setitimer", "value"): 32,         # struct __kernel_old_itimerval: interval, value
    ("ppoll", "tsp"): 16,               # the timeouts of the timed waits
    ("pselect6", "tsp"): 16,
    ("select", "tvp"): 16,              # struct __kernel_old_timeval
    ("epoll_pwait2", "timeout"): 16,
}
# (syscall, argument) → the argument holding its size
SIZED_STRUCTS = {("clone3", "uargs"): "size", ("openat2", "how"): "usize"}
# (syscall, argument) → bytes of an output read at the exit stop
OUT_SIZES = {("pipe", "fildes"): 8, ("pipe2", "fildes"): 8, ("socketpair", "usockvec"): 8,
             ("waitid", "infop"): 32,       # siginfo: signo, errno, code, pad, pid, uid, status
             # struct stat up to st_size (dev, ino, nlink, mode, uid, gid, pad, rdev, size)
             ("stat", "statbuf"): 56, ("lstat", "statbuf"): 56, ("fstat", "statbuf"): 56,
             ("newfstatat", "statbuf"): 56,
             ("statx", "buffer"): 48,       # struct statx up to stx_size
             ("getsockname", "usockaddr"): 16}  # a struct sockaddr_in: the port bind(0) got
# (syscall, fd argument) → bytes of the socket's own address (a struct sockaddr_in), read
# at the exit stop of the calls that give a socket its port (a bind to port 0, the
# autobind of listen/connect/sendto/sendmsg): the ports the model's events show are real
SOCKNAME_SIZES = {("bind", "fd"): 16, ("listen", "fd"): 16, ("connect", "fd"): 16,
                  ("sendto", "fd"): 16, ("sendmsg", "fd"): 16}


class CaptureSpec(NamedTuple):
    nr: int
    argidx: int
    kind: CaptureKind
    param: int          # BUFFER: index of the length argument; FIXED, OUT: the size; CSTRING: 0


def capture_table(table: SyscallTable) -> list[CaptureSpec]:
    """The capture specs for every syscall of ``table``, by number then argument."""
    specs: list[CaptureSpec] = []
    for nr in sorted(table.by_nr):
        sc = table.by_nr[nr]
        names = [a.name for a in sc.args]
        for i, arg in enumerate(sc.args):
            key = (sc.name, arg.name)
            nxt = sc.args[i + 1] if i + 1 < len(sc.args) else None
            if key in SOCKNAME_SIZES:
                specs.append(CaptureSpec(nr, i, CaptureKind.SOCKNAME, SOCKNAME_SIZES[key]))
            elif key in FIXED_SIZES:
                specs.append(CaptureSpec(nr, i, CaptureKind.FIXED, FIXED_SIZES[key]))
            elif key in OUT_SIZES:
                specs.append(CaptureSpec(nr, i, CaptureKind.OUT, OUT_SIZES[key]))
            elif key in SIZED_STRUCTS:
                specs.append(CaptureSpec(nr, i, CaptureKind.BUFFER, names.index(SIZED_STRUCTS[key])))
            elif arg.name in DATA_ARGS:
                continue
            elif arg.type in BUFFER_TYPES and nxt is not None and nxt.name in LENGTH_NAMES:
                if nxt.type == "int":
                    specs.append(CaptureSpec(nr, i, CaptureKind.BUFFER, i + 1))
            elif arg.type in STRING_TYPES:
                specs.append(CaptureSpec(nr, i, CaptureKind.CSTRING, 0))
    return specs
