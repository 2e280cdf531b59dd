"""Security of the mount, as tracefs: modes and ownership, default_permissions,
allow_other only when asked, non-owners denied, no host data leaking into the trace.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MountServer, sh

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A mountpoint every user can reach (pytest's tmp_path is 0700)."""
    d = Path(tempfile.mkdtemp(prefix="tracefs-sec-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _as_nobody(cmd: str, cwd: str = "/") -> subprocess.CompletedProcess:
    if not shutil.which("setpriv"):
        pytest.skip("no setpriv")
    return subprocess.run(["timeout", "-k", "1", "10", *NOBODY, "sh", "-c", cmd], cwd=cwd,
                          capture_output=True, text=True)


def _mount_options(path: Path) -> list[str]:
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[1] == str(path):
                return fields[3].split(",")
    return []


def test_modes_and_owner_follow_tracefs(public_dir, mount_server: MountServer):
    root = mount_server(path=public_dir / "t").path
    st = root.stat()
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.getuid()
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        if "events/" in dirpath + "/" and dirpath.count("/") > str(root).count("/") + 2:
            dirnames[:] = []          # one level of events/SYS is enough
        for name in filenames + dirnames:
            p = Path(dirpath, name)
            s = p.lstat()
            assert s.st_uid == os.getuid(), p
            mode = stat.S_IMODE(s.st_mode)
            assert not mode & 0o002, f"{p} is world-writable ({mode:o})"
            if stat.S_ISREG(s.st_mode):
                assert not mode & 0o007, f"{p}: {mode:o}"
                assert mode in (0o640, 0o440, 0o600, 0o400, 0o200, 0o220, 0o644, 0o444), p
            seen += 1
    assert seen > 200
    assert "default_permissions" in _mount_options(root)
    assert "allow_other" not in _mount_options(root)


def test_other_users_are_kept_out(public_dir, mount_server: MountServer):
    server = mount_server(path=public_dir / "t")
    # without allow_other FUSE refuses every request of another user
    r = _as_nobody(f"ls {server.path}/; cat {server.path}/trace")
    assert r.returncode != 0 and "Permission denied" in r.stderr
    assert sh(server.path, "cat tracing_on").stdout == "1\n"
    server.stop()
    server = mount_server(path=public_dir / "u", extra=("--allow-other",))
    assert "allow_other" in _mount_options(server.path)
    # allowed through FUSE, the 0700 root still keeps a non-owner out
    r = _as_nobody(f"ls {server.path}/ || echo LS-DENIED; "
                   f"echo 0 > {server.path}/tracing_on || echo WRITE-DENIED")
    assert "LS-DENIED" in r.stdout and "WRITE-DENIED" in r.stdout, r
    assert sh(server.path, "cat tracing_on").stdout == "1\n"   # nothing changed


class _OpenWatch:
    """inotify IN_OPEN|IN_ACCESS on one host file: did anybody open or read it?"""

    IN_ACCESS, IN_OPEN, IN_NONBLOCK = 0x1, 0x20, 0o4000

    def __init__(self, path: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(self.IN_NONBLOCK)
        if self.fd < 0 or libc.inotify_add_watch(self.fd, str(path).encode(),
                                                 self.IN_OPEN | self.IN_ACCESS) < 0:
            pytest.skip("no inotify")

    def touched(self) -> bool:
        try:
            return bool(os.read(self.fd, 4096))
        except BlockingIOError:
            return False

    def close(self) -> None:
        os.close(self.fd)


def test_no_host_file_is_read_on_a_users_behalf(public_dir, mount_server: MountServer):
    secret = public_dir / "secret.txt"
    secret.write_text("TOPSECRET-HOST-DATA\n")
    watch = _OpenWatch(secret)
    try:
        mnt = mount_server(path=public_dir / "t").path
        # a uprobe path is looked up (kern_path: stat) but the file is never opened
        assert sh(mnt, f"echo 'p:leak {secret}:0x10 +0($stack):ustring' >> uprobe_events"
                       " && echo 1 > events/uprobes/leak/enable").returncode == 0
        # fetches read simulated memory only, whatever address they name
        r = sh(mnt, "echo 'p:k vfs_read a=+0(%di):string b=+0x1000(%si):ustring' >> kprobe_events"
                    " && echo 1 > events/kprobes/k/enable && cat README > /dev/null"
                    " && echo 0 > events/kprobes/k/enable")
        assert r.returncode == 0, r.stderr
        # an error names the host path the user wrote, nothing from the file
        sh(mnt, f"echo 'p:bad {secret}:0x10 %zz' >> uprobe_events")
        texts = sh(mnt, "cat trace error_log uprobe_events kprobe_events").stdout
        assert "TOPSECRET" not in texts
        assert str(secret) in texts
        assert not watch.touched(), "the server opened a host file named in a definition"
    finally:
        watch.close()
