"""Shared fixtures: a booted kernel, and FUSE mounts of the simulator run as a subprocess.

Lanes: a test that mounts carries the ``mount`` marker, one that runs for long (a
time-boxed fuzz run, the soak, ftracetest, the golden replay) ``slow``.  Every test that
uses a mount fixture gets ``mount`` here, so none can be forgotten; tests that mount
through a script or ``tracefs-sim run`` mark their module.  ``scripts/test --fast``
runs ``-m "not mount and not slow"``.  Mount tests are skipped when /dev/fuse or
fusermount3 is missing.

Mounts come from ``tracefs_sim.mountctl`` (the lifecycle scripts use too): the server is
``python -m tracefs_sim DIR --cpus 2 --seed N``; teardown unmounts it and fails the test
when the server logged a Traceback (unless the test expects one).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tracefs_sim.kernel import Kernel
from tracefs_sim.mountctl import Mount, MountError, have_fuse

TESTS = Path(__file__).resolve().parent
MOUNT_FIXTURE = "mount_server"  # every mount fixture builds on this one


# The longest tests, started first: scripts/test spreads the suite over one worker per
# CPU (pytest-xdist, work stealing), and the run ends when its last test ends, so a long
# test must not start late.  Roughly what each takes (s) on a 2-core machine under the
# full run's load (a file's name alone: each of its tests): only their order matters.
LONGEST_FIRST = {"test_ftracetest.py::test_expected_ftracetest_cases_pass": 480,
                 "test_soak.py::test_short_soak": 120,
                 "test_golden.py::test_golden_topics_meet_their_floors": 70,
                 "test_fuzz.py::test_fuzz_tree_layer": 25,
                 "test_fuzz.py::test_fuzz_through_the_mount": 15,
                 "test_tools.py": 10}


def _weight(item: pytest.Item) -> int:
    name = item.path.name
    return LONGEST_FIRST.get(f"{name}::{getattr(item, 'originalname', item.name)}",
                             LONGEST_FIRST.get(name, 0))


def _spread_longest(items: list[pytest.Item], workers: int) -> list[pytest.Item]:
    """The order that starts the longest tests at once and balances them over workers.

    xdist's work stealing hands worker i the i-th contiguous share of the list (each
    takes an equal part of what is left) and steals from a queue's end, so the tests at
    the head of a share run first on its worker.  The longest go to the heads of the
    shares, each to the share with the least of them so far (longest processing time
    first), the rest fill the shares in collection order.  Another split only costs
    time, never a result."""
    long = sorted((it for it in items if _weight(it)), key=lambda it: -_weight(it))
    rest = [it for it in items if not _weight(it)]
    sizes, left = [], len(items)
    for i in range(workers):
        sizes.append(left // (workers - i))
        left -= sizes[-1]
    shares: list[list[pytest.Item]] = [[] for _ in range(workers)]
    load = [0] * workers
    for it in long:
        i = min(range(workers), key=lambda w: (load[w], w))
        shares[i].append(it)
        load[i] += _weight(it)
    for share, size in zip(shares, sizes, strict=True):
        while len(share) < size and rest:
            share.append(rest.pop(0))
    return [it for share in shares for it in share] + rest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = None if have_fuse() else pytest.mark.skip(reason="needs /dev/fuse and fusermount3")
    for item in items:
        if isinstance(item, pytest.Function) and MOUNT_FIXTURE in item.fixturenames:
            item.add_marker(pytest.mark.mount)
        if skip is not None and "mount" in item.keywords:
            item.add_marker(skip)


class _LongestFirst:
    """The order of the tests left once ``-m``/``-k``/``--deselect`` have removed theirs
    (a conftest's own hook runs before those: it adds the ``mount`` marker ``-m`` needs).
    One process running every test (``-n 0``) keeps collection order."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        if workers > 1:
            items[:] = _spread_longest(items, workers)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_LongestFirst(), "tracefs-sim-longest-first")


@pytest.fixture
def kernel() -> Kernel:
    return Kernel(nr_cpus=2, seed=1)


class Server(Mount):
    """A mount of a test: ``allow_traceback`` when the test provokes a logged error."""

    def __init__(self, path: Path, args: list[str], allow_traceback: bool = False) -> None:
        try:
            super().__init__(path, args, pythonpath=[TESTS])
        except MountError as e:
            pytest.fail(str(e))
        self.allow_traceback = allow_traceback


MountServer = Callable[..., Server]


@pytest.fixture
def mount_server(tmp_path: Path) -> Iterator[MountServer]:
    """Factory: ``mount_server(tree_factory=None, seed=1, cpus=2, allow_traceback=False,
    extra=(), path=None)``; ``path`` defaults to a new directory under tmp_path."""
    servers: list[Server] = []

    def start(tree_factory: str | None = None, seed: int | None = 1, cpus: int = 2,
              allow_traceback: bool = False, extra: tuple[str, ...] = (),
              path: Path | None = None) -> Server:
        if path is None:
            path = tmp_path / f"mnt{len(servers) + 1}"
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
        server.stop()
        tb = server.traceback()
        if tb is not None and not server.allow_traceback:
            errors.append(f"server of {server.path} logged a Traceback:\n{tb}")
    if errors:
        pytest.fail("\n".join(errors))


@pytest.fixture
def mounted(mount_server: MountServer) -> Path:
    """The simulator's real tree, mounted (seed 1, 2 CPUs)."""
    return mount_server().path


@pytest.fixture
def adapter_mount(mount_server: MountServer) -> Server:
    """The adapter's test tree (tests/adapter_tree.py), mounted."""
    return mount_server(tree_factory="adapter_tree:build")


def sh(cwd: Path | str, cmd: str, timeout: float = 5) -> subprocess.CompletedProcess:
    """``sh -c CMD`` in ``cwd``, bounded: a blocked FUSE read only yields to SIGKILL."""
    return subprocess.run(["timeout", "-k", "1", str(timeout), "sh", "-c", cmd], cwd=cwd,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
