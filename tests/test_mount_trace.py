"""The real tracing tree through a mount, driven by shell commands as users drive it."""

from __future__ import annotations

import subprocess
import time

import pytest
from conftest import sh

pytestmark = pytest.mark.mount


def test_marker_shows_in_trace_and_pipe(mounted):
    r = sh(mounted, "echo hello > trace_marker && cat trace")
    assert r.returncode == 0
    assert r.stdout.startswith("# tracer: nop\n#\n# entries-in-buffer/entries-written: 1/1   #P:2\n")
    assert r.stdout.rstrip("\n").endswith(": tracing_mark_write: hello")
    r = sh(mounted, "timeout -k 1 2 head -n 1 trace_pipe")
    assert r.stdout.rstrip("\n").endswith(": tracing_mark_write: hello")
    r = sh(mounted, "grep -c hello trace || true")
    assert r.stdout.strip() == "0"  # consumed by trace_pipe


def test_writer_pinned_to_a_cpu_lands_on_it(mounted):
    sh(mounted, "echo > trace; taskset -c 1 sh -c 'echo on-one > trace_marker'")
    assert "on-one" in sh(mounted, "cat per_cpu/cpu1/trace").stdout
    assert "on-one" not in sh(mounted, "cat per_cpu/cpu0/trace").stdout


def test_blocked_trace_pipe_reader_wakes_on_write(mounted):
    reader = subprocess.Popen(["timeout", "-k", "1", "5", "head", "-n", "1", "trace_pipe"], cwd=mounted,
                              stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    assert reader.poll() is None  # blocked while the buffer is empty
    assert sh(mounted, "cat tracing_on").stdout == "1\n"  # other requests are served meanwhile
    sh(mounted, "echo wake-up > trace_marker")
    out, _ = reader.communicate(timeout=5)
    assert out.rstrip("\n").endswith("tracing_mark_write: wake-up")


def test_errors_are_the_kernels(mounted):
    r = subprocess.run(["bash", "-c", "echo nosuchtracer > current_tracer"], cwd=mounted,
                       capture_output=True, text=True, timeout=5)
    assert r.returncode == 1 and "Invalid argument" in r.stderr
    r = subprocess.run(["bash", "-c", "echo 0 > tracing_on; echo x > trace_marker"], cwd=mounted,
                       capture_output=True, text=True, timeout=5)
    assert "Bad file descriptor" in r.stderr
    sh(mounted, "echo 1 > tracing_on")
    r = subprocess.run(["bash", "-c", "touch newfile"], cwd=mounted, capture_output=True, text=True, timeout=5)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    r = subprocess.run(["bash", "-c", "mkdir events/foo"], cwd=mounted, capture_output=True, text=True,
                       timeout=5)
    assert r.returncode != 0 and "Operation not permitted" in r.stderr


def test_instances_mkdir_busy_rmdir(mounted):
    assert sh(mounted, "mkdir instances/foo && cat instances/foo/buffer_size_kb").stdout == "1410\n"
    reader = subprocess.Popen(["timeout", "-k", "1", "5", "cat", "instances/foo/trace_pipe"], cwd=mounted,
                              stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    r = subprocess.run(["bash", "-c", "rmdir instances/foo"], cwd=mounted, capture_output=True, text=True,
                       timeout=5)
    assert r.returncode != 0 and "busy" in r.stderr
    reader.kill()
    reader.wait()
    time.sleep(0.3)
    assert sh(mounted, "rmdir instances/foo && ls instances").stdout == ""


def test_function_tracer_sees_the_callers_reads(mounted):
    sh(mounted, "echo vfs_read > set_ftrace_filter && echo function > current_tracer")
    sh(mounted, "cat README > /dev/null")
    sh(mounted, "echo 0 > tracing_on")
    out = sh(mounted, "cat trace").stdout
    sh(mounted, "echo nop > current_tracer; echo > set_ftrace_filter; echo 1 > tracing_on")
    assert "# tracer: function" in out
    assert any(line.lstrip().startswith("cat-") and "vfs_read <-ksys_read" in line
               for line in out.splitlines()), out[-2000:]


def test_appends_after_writes_start_at_offset_zero(mounted):
    """Appends after writes through the mount (whose stable files the VFS may cache) add
    words and definitions, as on tracefs."""
    sh(mounted, "echo vfs_read > set_graph_function && echo vfs_write >> set_graph_function"
                " && echo ksys_read >> set_graph_function")
    assert sorted(sh(mounted, "cat set_graph_function").stdout.split()) == ["ksys_read", "vfs_read",
                                                                           "vfs_write"]
    sh(mounted, "echo > set_graph_function")
    r = sh(mounted, "echo 'f:myfp vfs_read' >> dynamic_events && echo 'f:myfp2 vfs_write' >> dynamic_events"
                    " && cat dynamic_events; echo > dynamic_events")
    assert r.stdout == "f:fprobes/myfp vfs_read\nf:fprobes/myfp2 vfs_write\n", r.stdout + r.stderr
