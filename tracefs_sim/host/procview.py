"""What the kernel model of traced tasks asks the host (kernel/workload/traced.py's
``Host``), read from /proc: the file behind an fd it did not see opened, the parent of
CMD, the comm of an untraced task a traced one signals, a script's interpreter, the
signals a process ignores, its memory cgroup, the mappings of a process whose exec the
model did not see, a process's working directory, what lstat says of a path (through
/proc/PID/root, the process's own view of the files).

Each answer is read when the model first needs it (an fd once per fd), a little after the
tracer's stop: an fd closed and reused meanwhile is named by its new file.
"""

from __future__ import annotations

import logging
import os
import stat
import threading

from ..kernel.workload.files import FileAttrs

log = logging.getLogger(__name__)

# How long the server waits for /proc/PID/maps.  Opening it takes the process's
# exec_update_lock (mm_access()); a thread of that process in execve holds it while it
# waits for its other threads to die (de_thread()), and one of those may be blocked in a
# FUSE request this very server has to answer: waiting longer would deadlock both.
MAPS_TIMEOUT_S = 0.05

# /proc/PID/net files whose inode column (10th; unix: 7th) names a socket's protocol
SOCKET_TABLES = (("unix", 6, "UNIX"), ("tcp", 9, "TCP"), ("tcp6", 9, "TCPv6"),
                 ("udp", 9, "UDP"), ("udp6", 9, "UDPv6"), ("raw", 9, "RAW"),
                 ("raw6", 9, "RAWv6"), ("netlink", 9, "NETLINK"))
UNIX_STREAM = 1                 # the unix table's Type column: SOCK_STREAM


class ProcView:
    """The host's /proc, for the model's questions."""

    def __init__(self, proc: str = "/proc") -> None:
        self.proc = proc        # where /proc is (a test points it at a stand-in)

    def fd_link(self, tgid: int, fd: int) -> tuple[str, str] | None:
        try:
            link = os.readlink(f"/proc/{tgid}/fd/{fd}")
        except OSError:
            return None
        proto = self._socket_proto(tgid, link[8:-1]) if link.startswith("socket:[") else ""
        return link, proto

    def _socket_proto(self, tgid: int, inode: str) -> str:
        """The protocol of socket ``inode``, from the tables of the process's netns."""
        for table, col, name in SOCKET_TABLES:
            try:
                with open(f"/proc/{tgid}/net/{table}") as f:
                    next(f, None)
                    for line in f:
                        cols = line.split()
                        if len(cols) > col and cols[col] == inode:
                            if table == "unix" and int(cols[4], 16) == UNIX_STREAM:
                                return "UNIX-STREAM"
                            return name
            except OSError:
                continue
        return ""

    def parent(self, pid: int) -> tuple[int, str] | None:
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{ppid}/comm") as f:
                return ppid, f.read().rstrip("\n")
        except (OSError, ValueError, IndexError):
            return None

    def comm(self, pid: int) -> str | None:
        try:
            with open(f"/proc/{pid}/comm") as f:
                return f.read().rstrip("\n")
        except OSError:
            return None

    def interp(self, tgid: int, filename: str) -> str | None:
        path = filename if filename.startswith("/") else f"/proc/{tgid}/cwd/{filename}"
        try:
            with open(path, "rb") as f:
                head = f.read(256)
        except OSError:
            return None
        if not head.startswith(b"#!"):
            return None
        words = head[2:].split(b"\n", 1)[0].split()
        return words[0].decode("utf-8", "surrogateescape") if words else None

    def ignored_signals(self, pid: int) -> int:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("SigIgn:"):
                        return int(line.split()[1], 16)
        except (OSError, ValueError):
            pass
        return 0

    def memcg(self, pid: int) -> str:
        """The path of the memory controller's cgroup (cgroup v1 ``N:memory:PATH``, else
        the v2 ``0::PATH`` line): what cgroup_path() of the mm's memcg gives."""
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                lines = f.read().splitlines()
        except OSError:
            return ""
        v2 = ""
        for line in lines:
            hid, _, rest = line.partition(":")
            ctrls, _, path = rest.partition(":")
            if "memory" in ctrls.split(","):
                return path
            if hid == "0" and not ctrls:
                v2 = path
        return v2

    def maps(self, tgid: int) -> str | None:
        """/proc/TGID/maps, read by a helper thread: None when it is not there, or not
        readable within ``MAPS_TIMEOUT_S`` (the process is in execve: see above; the
        helper thread finishes once the server has answered what blocked it)."""
        got: list[str | None] = []

        def read() -> None:
            try:
                with open(f"{self.proc}/{tgid}/maps") as f:
                    got.append(f.read())
            except OSError:
                got.append(None)

        reader = threading.Thread(target=read, name=f"maps-{tgid}", daemon=True)
        reader.start()
        reader.join(MAPS_TIMEOUT_S)
        if not got:
            log.warning("/proc/%d/maps not readable within %.0f ms (the process is in "
                        "execve): its mm is modelled without it", tgid, MAPS_TIMEOUT_S * 1000)
            return None
        return got[0]

    def lstat(self, tgid: int, path: str) -> FileAttrs | None:
        # the process's view while it lives, the server's (the same namespace) after
        where = f"/proc/{tgid}/root{path}" if os.path.exists(f"/proc/{tgid}") else path
        try:
            st = os.lstat(where)
            target = os.readlink(where) if stat.S_ISLNK(st.st_mode) else ""
        except OSError:
            return None
        return FileAttrs(st.st_ino, st.st_mode, st.st_size, st.st_nlink, int(st.st_mtime), target)

    def cwd(self, tgid: int) -> str | None:
        try:
            return os.readlink(f"/proc/{tgid}/cwd")
        except OSError:
            return None
