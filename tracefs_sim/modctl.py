"""``tracefs-sim insmod|rmmod|lsmod|dmesg MOUNTPOINT …``: load Python kernel modules into a
running mount and read its kernel log (the client; the server side is
tracefs_sim/fuse/control.py).

The channel is a local stream socket in the abstract namespace whose name is derived
from the mountpoint (``address``): nothing on disk, so any mountpoint works.  Both ends
check the other with SO_PEERCRED: the server serves only its own user and root, and the
client talks only to a server of its own user or root (a name squatted by another user
is refused).  One JSON request per connection, one JSON reply:

    {"op": "insmod", "name": NAME, "path": PATH, "source": TEXT, "params": {K: V}}
    {"op": "rmmod", "name": NAME}
    {"op": "lsmod"}          {"op": "dmesg"}
    -> {"err": 0, "text": "..."}  or  {"err": ERRNO, "msg": "..."}

The client sends the module's source (the server need not see the client's file) and
names itself ``insmod``/``rmmod``/… (its comm), so what the module's init does shows in
the simulated kernel as done by that task.  Standard library only.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import struct
import sys

OPS = ("insmod", "rmmod", "lsmod", "dmesg")
MAX_MESSAGE = 16 << 20
UCRED = struct.Struct("3i")   # struct ucred: pid, uid, gid
USAGE = """usage: tracefs-sim insmod MOUNTPOINT FILE.py [param=value ...]
       tracefs-sim rmmod MOUNTPOINT NAME
       tracefs-sim lsmod MOUNTPOINT
       tracefs-sim dmesg MOUNTPOINT"""


def mount_key(mountpoint: str) -> str:
    """The mountpoint as both ends name it: its parent resolved, itself not (the server
    must not stat its own mount before it serves)."""
    path = os.path.abspath(mountpoint)
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def address(mountpoint: str) -> bytes:
    """The abstract socket name of a mount's control channel: the mountpoint and the
    mount namespace it is seen in.  Abstract names are per network namespace, and every
    ``tracefs-sim run`` mounts at /sys/kernel/tracing in a mount namespace of its own
    beside the host's network: without the namespace, two runs at once would share one
    name, and one's ``insmod`` would load into the other's kernel."""
    ns = os.stat("/proc/self/ns/mnt")
    key = f"{ns.st_dev}:{ns.st_ino}:{mount_key(mountpoint)}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return b"\0tracefs-sim-ctl:" + digest.encode()


def peer_uid(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the other end (SO_PEERCRED)."""
    pid, uid, _gid = UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, UCRED.size))
    return pid, uid


def trusted(uid: int) -> bool:
    """The peers a control channel end talks to: root and its own user."""
    return uid == 0 or uid == os.geteuid()


def read_message(sock: socket.socket) -> dict[str, object]:
    """One JSON object, up to the end of the stream."""
    chunks = []
    size = 0
    while True:
        data = sock.recv(65536)
        if not data:
            break
        size += len(data)
        if size > MAX_MESSAGE:
            raise ValueError("message too large")
        chunks.append(data)
    msg = json.loads(b"".join(chunks) or b"{}")
    if not isinstance(msg, dict):
        raise ValueError("not a JSON object")
    return msg


def request(mountpoint: str, req: dict[str, object]) -> dict[str, object]:
    """Send ``req`` to the server of ``mountpoint``; its reply (raises OSError)."""
    addr = address(mountpoint)      # outside the try: a missing /proc is no "no server"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(addr)
        except (ConnectionRefusedError, FileNotFoundError):
            raise OSError(errno.ENOENT, f"{mountpoint}: no tracefs-sim server serves it") from None
        _pid, uid = peer_uid(s)
        if not trusted(uid):
            raise OSError(errno.EPERM, f"{mountpoint}: its control socket belongs to uid {uid}")
        s.sendall(json.dumps(req).encode())
        s.shutdown(socket.SHUT_WR)
        return read_message(s)


# kmod's mod_strerror(): how insmod(8) words the kernel's errors
_INSMOD_ERRORS = {errno.ENOEXEC: "Invalid module format", errno.ENOENT: "Unknown symbol in module",
                  errno.ESRCH: "Module has wrong symbol version", errno.EINVAL: "Invalid parameters"}


def _set_comm(op: str) -> None:
    """Be ``insmod`` etc. in the simulated kernel's eyes (/proc/self/comm)."""
    with open("/proc/self/comm", "w") as f:
        f.write(op)


def main(argv: list[str]) -> int:
    """``argv`` = [op, MOUNTPOINT, ...]; returns the exit status."""
    if len(argv) < 2 or argv[0] not in OPS or argv[1] in ("-h", "--help"):
        print(USAGE, file=sys.stderr)
        return 2
    op, mountpoint, rest = argv[0], argv[1], argv[2:]
    req: dict[str, object] = {"op": op}
    if op == "insmod":
        if not rest:
            print(USAGE, file=sys.stderr)
            return 2
        path = os.path.abspath(rest[0])
        params = {}
        for kv in rest[1:]:
            key, sep, value = kv.partition("=")
            if not key:
                print(f"insmod: ERROR: bad parameter {kv!r}", file=sys.stderr)
                return 1
            params[key] = value if sep else "1"   # a bare name is a bool parameter set
        try:
            with open(path, encoding="utf-8") as f:
                source = f.read()
        except OSError as e:
            print(f"insmod: ERROR: could not load module {rest[0]}: {e.strerror}", file=sys.stderr)
            return 1
        name = os.path.splitext(os.path.basename(path))[0]
        req.update(name=name, path=path, source=source, params=params)
    elif op == "rmmod":
        if len(rest) != 1:
            print(USAGE, file=sys.stderr)
            return 2
        req["name"] = rest[0].removesuffix(".py")
    elif rest:
        print(USAGE, file=sys.stderr)
        return 2
    _set_comm(op)
    try:
        reply = request(mountpoint, req)
    except (OSError, ValueError) as e:
        print(f"{op}: ERROR: {e}", file=sys.stderr)
        return 1
    err = reply.get("err")
    if not isinstance(err, int):
        print(f"{op}: ERROR: bad reply from the server: {reply!r}", file=sys.stderr)
        return 1
    if err == 0:
        sys.stdout.write(str(reply.get("text", "")))
        return 0
    msg = str(reply.get("msg", ""))
    if op == "insmod":
        print(f"insmod: ERROR: could not insert module {rest[0]}: "
              f"{_INSMOD_ERRORS.get(err, os.strerror(err))}", file=sys.stderr)
    elif op == "rmmod" and err == errno.ENOENT:
        print(f"rmmod: ERROR: Module {req['name']} is not currently loaded", file=sys.stderr)
    elif op == "rmmod":
        print(f"rmmod: ERROR: could not remove module {req['name']}: {os.strerror(err)}",
              file=sys.stderr)
    else:
        print(f"{op}: ERROR: {os.strerror(err)}", file=sys.stderr)
    if msg:
        print(f"{op}: {msg}", file=sys.stderr)
    return 1
