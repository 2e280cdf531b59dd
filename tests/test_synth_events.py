"""Synthetic events (trace_events_synth.py): definitions through dynamic_events and
synthetic_events, the event format, error_log texts and carets, removal (6.12 texts;
golden 12-dynamic_events.txt for ``s:synth u64 lat; pid_t pid``)."""

from __future__ import annotations

import errno

import pytest

from tracefs_sim.kernel import Kernel
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import read_file, write_errno


class Env:
    def __init__(self) -> None:
        self.k = Kernel(nr_cpus=2, seed=1)
        self.root = build_tree(self.k)

    def write(self, path: str, text: str, append: bool = True) -> int:
        return write_errno(self.root, path, text, append)

    def read(self, path: str) -> str:
        return read_file(self.root, path).decode()


@pytest.fixture
def env() -> Env:
    return Env()


def test_dynamic_events_and_synthetic_events_lines(env):
    assert env.write("dynamic_events", "s:synth u64 lat; pid_t pid\n") == 0
    assert env.write("dynamic_events", "s:synthetic/latency1 u64 lat; pid_t pid;\n") == 0
    assert env.write("synthetic_events", "wl pid_t pid; char comm[16]; char path[]; "
                     "unsigned int x; long[] stack\n") == 0
    assert env.read("dynamic_events") == (
        "s:synthetic/synth\tu64 lat; pid_t pid\n"
        "s:synthetic/latency1\tu64 lat; pid_t pid\n"
        "s:synthetic/wl\tpid_t pid; char[16] comm; char[] path; unsigned int x; long[] stack\n")
    assert env.read("synthetic_events") == (
        "synth\tu64 lat; pid_t pid\nlatency1\tu64 lat; pid_t pid\n"
        "wl\tpid_t pid; char[16] comm; char[] path; unsigned int x; long[] stack\n")
    assert "synthetic:synth" in env.read("available_events").split()


def test_format_layout(env):
    env.write("dynamic_events", "s:synth u64 lat; pid_t pid\n")
    fmt = env.read("events/synthetic/synth/format")
    assert fmt.split("format:\n", 1)[1] == (
        "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
        "\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n"
        "\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n"
        "\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n"
        "\tfield:u64 lat;\toffset:8;\tsize:8;\tsigned:0;\n"
        "\tfield:pid_t pid;\toffset:16;\tsize:4;\tsigned:1;\n\n"
        'print fmt: "lat=%llu, pid=%d", REC->lat, REC->pid\n')
    env.write("synthetic_events", "wl char comm[16]; char path[]; long[] stack; gfp_t g\n")
    fmt = env.read("events/synthetic/wl/format")
    # a fixed string takes STR_VAR_LEN_MAX bytes; char[] and long[] are __data_loc u64 slots
    assert "\tfield:char comm[];\toffset:8;\tsize:16;\tsigned:1;\n" in fmt
    assert "\tfield:__data_loc char[] path;\toffset:264;\tsize:8;\tsigned:1;\n" in fmt
    assert "\tfield:__data_loc long[] stack;\toffset:272;\tsize:8;\tsigned:1;\n" in fmt
    assert "\tfield:gfp_t g;\toffset:280;\tsize:4;\tsigned:0;\n" in fmt
    assert fmt.endswith('print fmt: "comm=%s, path=%s, stack=%s, g=%x", REC->comm, '
                        "__get_str(path), __get_stacktrace(stack), REC->g\n")


@pytest.mark.parametrize("cmd, text, caret", [
    ("bad pid_tt pid", "Invalid type", 4),
    ("bad2 u64", "Command must be of the form: <name> field[;field] ...", 0),
    ("9bad u64 x", "Illegal name", 0),
    ("bad3 char x[1000]", "Invalid array specification", 10),
    ("bad4 u64 a; unsigned", "Incomplete type", 12),
    ("bad5 u64 1a", "Illegal name", 9),
])
def test_errors_in_synthetic_events(env, cmd, text, caret):
    assert env.write("synthetic_events", cmd + "\n") == errno.EINVAL
    log = env.read("error_log").splitlines()
    assert log[0].endswith(f"synthetic_events: error: {text}")
    assert log[1] == f"  Command: {cmd}"
    assert log[2] == " " * (11 + caret) + "^"


def test_exists_and_dyn_syntax_errors(env):
    env.write("synthetic_events", "s1 u64 a\n")
    assert env.write("synthetic_events", "s1 u64 a\n") == errno.EEXIST
    assert env.read("error_log").splitlines()[0].endswith("synthetic_events: error: Event already exists")
    assert env.write("dynamic_events", "s:other/x u64 a\n") == errno.EINVAL
    assert env.read("error_log").splitlines()[-3].endswith(
        "error: Command must be of the form: s or -:[synthetic/]<name> field[;field] ...")


def test_removal_and_busy(env):
    env.write("dynamic_events", "s:latency1 u64 lat; pid_t pid;\n")
    env.write("dynamic_events", "s:latency2 u64 lat; pid_t pid;\n")
    env.write("dynamic_events", "p:myevent1 kernel_clone\n")
    assert env.write("dynamic_events", "!s:latency1 u64 lat; pid_t pid;\n") == 0
    assert env.write("synthetic_events", "!nosuch\n") == errno.ENOENT
    assert env.write("events/synthetic/latency2/enable", "1") == 0
    assert env.write("synthetic_events", "!latency2\n") == errno.EBUSY
    assert env.write("synthetic_events", "", append=False) == errno.EBUSY
    env.write("events/synthetic/latency2/enable", "0")
    # O_TRUNC of synthetic_events releases only the synthetic events
    assert env.write("synthetic_events", "", append=False) == 0
    assert env.read("dynamic_events") == "p:kprobes/myevent1 kernel_clone\n"
    assert "synthetic" not in [n for n, _ in env.root.lookup("events").entries()]
