"""Shared fixtures: a booted kernel, and FUSE mounts of the simulator run as a subprocess.

Mount tests (``@pytest.mark.mount``) are skipped when /dev/fuse or fusermount3 is missing.
The server runs as ``python mount.py DIR --cpus 2 --seed N`` with stderr in a file; the
mount is ready when its line is in /proc/self/mountinfo (which never touches the FUSE fs).
Teardown always runs ``fusermount3 -u -z``, then terminate, then kill, and fails the test
when the server's stderr has a "Traceback" (unless the test expects one).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
HAVE_FUSE = os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None


def pytest_collection_modifyitems(config, items) -> None:
    if HAVE_FUSE:
        return
    skip = pytest.mark.skip(reason="needs /dev/fuse and fusermount3")
    for item in items:
        if "mount" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def kernel():
    from tracefs_sim.kernel import Kernel

    return Kernel(nr_cpus=2, seed=1)


def mount_points() -> set[str]:
    """Mount points listed in /proc/self/mountinfo (field 5, octal escapes undone)."""
    out = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            out.add(mp.encode().decode("unicode_escape"))
    return out


class Server:
    """One ``mount.py`` subprocess serving ``path``."""

    def __init__(self, path: Path, args: list[str], allow_traceback: bool = False) -> None:
        self.path = path
        self.allow_traceback = allow_traceback
        self.stderr_path = path.parent / f"{path.name}.server.stderr"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), str(ROOT),
                                                           env.get("PYTHONPATH", "")]))
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "mount.py"), str(path), *args],
                                     cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._stderr, stderr=self._stderr)
        self.t_ready = self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if str(self.path) in mount_points():
                return time.monotonic() - t0
            if self.proc.poll() is not None:
                self.stop(check=False)
                pytest.fail(f"mount server exited with {self.proc.returncode}:\n{self.stderr()}")
            time.sleep(0.02)
        self.stop(check=False)
        pytest.fail(f"mount not ready after {timeout} s:\n{self.stderr()}")

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def mounted(self) -> bool:
        return str(self.path) in mount_points()

    def stop(self, check: bool = True) -> None:
        if self.mounted():
            subprocess.run(["fusermount3", "-u", "-z", str(self.path)], capture_output=True)
            try:  # an unmounted server ends by itself
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._stderr.close()
        if check and not self.allow_traceback and "Traceback" in self.stderr():
            pytest.fail(f"server stderr has a Traceback:\n{self.stderr()}")


@pytest.fixture
def mount_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Factory: ``mount_server(tree_factory=None, seed=1, cpus=2, allow_traceback=False)``."""
    servers: list[Server] = []
    counter = [0]

    def start(tree_factory: str | None = None, seed: int | None = 1, cpus: int = 2,
              allow_traceback: bool = False, extra: tuple[str, ...] = ()) -> Server:
        counter[0] += 1
        path = tmp_path / f"mnt{counter[0]}"
        path.mkdir()
        args = ["--cpus", str(cpus)]
        if seed is not None:
            args += ["--seed", str(seed)]
        if tree_factory:
            args += ["--tree-factory", tree_factory]
        server = Server(path, [*args, *extra], allow_traceback)
        servers.append(server)
        return server

    yield start
    errors = []
    for server in servers:
        try:
            server.stop()
        except pytest.fail.Exception as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors))


@pytest.fixture
def mounted(mount_server) -> Path:
    """The simulator's real tree, mounted (seed 1, 2 CPUs)."""
    try:
        import tracefs_sim.tracefs.trace_files  # noqa: F401
    except ImportError:
        pytest.skip("tracefs_sim.tracefs.trace_files does not exist yet")
    return mount_server().path


@pytest.fixture
def adapter_mount(mount_server) -> Server:
    """The adapter's test tree (tests/adapter_tree.py), mounted."""
    return mount_server(tree_factory="adapter_tree:build")


def sh(cwd: Path | str, cmd: str, timeout: float = 5) -> subprocess.CompletedProcess:
    """``sh -c CMD`` in ``cwd``, bounded: a blocked FUSE read only yields to SIGKILL."""
    return subprocess.run(["timeout", "-k", "1", str(timeout), "sh", "-c", cmd], cwd=cwd,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
