"""The hist and event-filter error tables (the ``ERRORS`` X-macros of
trace_events_hist.c and trace_events_filter.c, 6.12) and the caret columns of a few
errors, derived from where the kernel's code calls hist_err()/parse_error()."""

from __future__ import annotations

import errno

import pytest

from tracefs_sim.kernel import Kernel
from tracefs_sim.kernel.trace_events_filter import FiltErr
from tracefs_sim.kernel.trace_events_hist_data import HistErr, HistLog
from tracefs_sim.tracefs import build_tree
from tracefs_sim.tracefs.files import read_file, write_errno

KMALLOC = "events/kmem/kmalloc"


@pytest.fixture
def env() -> tuple[Kernel, object]:
    k = Kernel(nr_cpus=2, seed=1)
    return k, build_tree(k)


def _errlog_last(root) -> tuple[str, str, int]:
    """(location + text, command, caret column in the command) of the last entry."""
    loc, command, pointer = read_file(root, "error_log").decode().splitlines()[-3:]
    prefix = "  Command: "
    assert command.startswith(prefix)
    return loc, command[len(prefix):], pointer.index("^") - len(prefix)


# -------------------------------------------------------------------- the tables
@pytest.mark.parametrize("enum,index,name,text", [
    # C(NONE, ...) is entry 0 of both tables: the enum value is the table index
    (FiltErr, 0, "NONE", "No error"),
    (FiltErr, 1, "INVALID_OP", "Invalid operator"),
    (FiltErr, 3, "TOO_MANY_CLOSE", "Too few '('"),
    (FiltErr, 13, "BAD_SUBSYS_FILTER", "Couldn't find or set field in one of a subsystem's events"),
    (FiltErr, 18, "INVALID_VALUE", "Invalid value (did you forget quotes)?"),
    (FiltErr, 21, "NO_FILTER", "No filter found"),
    (HistErr, 0, "NONE", "No error"),
    (HistErr, 2, "VAR_NOT_UNIQUE", "Variable name not unique, need to use fully qualified "
                                   "name (subsys.event.var) for variable"),
    (HistErr, 12, "TOO_MANY_FIELD_VARS", "Too many field variables defined"),
    (HistErr, 31, "TOO_MANY_SAVE_ACTIONS", "Can't have more than one save() action per hist"),
    (HistErr, 48, "NEED_NOHC_VAL", "Non-hitcount value is required for 'nohitcount'"),
])
def test_tables_follow_the_kernel(enum, index, name, text) -> None:
    member = list(enum)[index]
    assert (member.name, member.value) == (name, text)


def test_tables_have_no_aliases() -> None:
    # an Enum silently merges members with the same text: every kernel name must stay
    assert len(FiltErr) == len(FiltErr.__members__) == 22
    assert len(HistErr) == len(HistErr.__members__) == 49


def test_hist_log_needs_a_command_and_finds_the_caret() -> None:
    logged: list[tuple[str, str, str, int]] = []

    class Tr:
        def log_err(self, loc: str, cmd: str, text: str, pos: int) -> None:
            logged.append((loc, cmd, text, pos))

    log = HistLog()
    log.err(Tr(), HistErr.FIELD_NOT_FOUND, "x")         # hist_err() without last_cmd
    assert logged == []
    log.cmd, log.loc = "hist:keys=a:b=c", "hist:sys:ev"
    log.err(Tr(), HistErr.FIELD_NOT_FOUND, "b")
    log.err(Tr(), HistErr.TRIGGER_EEXIST)
    log.err(Tr(), HistErr.VAR_NOT_FOUND, "nowhere")      # strstr() miss: column 0
    assert [(t, p) for _l, _c, t, p in logged] == [
        ("Couldn't find field", 12), ("Hist trigger already exists", 0),
        ("Couldn't find variable", 0)]


# -------------------------------------------------------------------- hist carets
@pytest.mark.parametrize("cmd,text,caret_at", [
    # parse_action(): hist_err(tr, HIST_ERR_SUBSYS_NOT_FOUND, errpos(match_event_system))
    ("hist:keys=bytes_req:onmatch(kmem).nosynth(bytes_req)", "Missing subsystem", "kmem)"),
    # ... HIST_ERR_INVALID_SUBSYS_EVENT, errpos(match_event)
    ("hist:keys=bytes_req:onmatch(kmem.nosuch).nosynth(bytes_req)",
     "Invalid subsystem or event name", "nosuch"),
    # parse_var_defs(): HIST_ERR_MALFORMED_ASSIGNMENT, errpos(field_name)
    ("hist:keys=bytes_req:a=1,b", "Malformed assignment", "b"),
    # parse_var_ref() via parse_atom(): HIST_ERR_VAR_NOT_FOUND, errpos(var_name)
    ("hist:keys=bytes_req:x=bytes_req+$nosuch", "Couldn't find variable", "nosuch"),
    # hist_register_trigger(): HIST_ERR_TRIGGER_ENOENT_CLEAR, errpos 0
    ("hist:keys=bytes_req:clear", "Can't clear or continue a nonexistent hist trigger", None),
])
def test_hist_error_carets(env, cmd, text, caret_at) -> None:
    _k, root = env
    assert write_errno(root, f"{KMALLOC}/trigger", cmd) in (errno.EINVAL, errno.ENOENT)
    loc, command, caret = _errlog_last(root)
    assert loc.endswith(f"hist:kmem:kmalloc: error: {text}")
    assert command == cmd
    assert caret == (cmd.index(caret_at) if caret_at else 0)


# -------------------------------------------------------------------- filter carets
@pytest.mark.parametrize("flt,ret,text,caret", [
    # parse_pred(): FILT_ERR_INVALID_OP at pos + i, pos = predicate start + 1
    ("bytes_req = 1", errno.EINVAL, "Invalid operator", 11),
    ("nosuch == 1", errno.EINVAL, "Field not found", 7),
    # FILT_ERR_ILLEGAL_INTVAL at pos + s (the number's start)
    ("bytes_req == 09", errno.EINVAL, "Illegal integer value", 14),
    # predicate_parse(): FILT_ERR_INVALID_FILTER at ptr - str, the end
    ("bytes_req == 1 &&", errno.EINVAL, "Meaningless filter expression", 17),
    # calc_stack() returns -1 (EPERM) / -3 (ESRCH) with the index of ')' / the quote
    ("bytes_req == 1)", errno.EPERM, "Too few '('", 14),
    ("bytes_req == 'abc", errno.ESRCH, "Missing matching quote", 13),
])
def test_filter_error_carets(env, flt, ret, text, caret) -> None:
    _k, root = env
    assert write_errno(root, f"{KMALLOC}/filter", flt) == ret
    loc, command, col = _errlog_last(root)
    assert loc.endswith(f"event filter parse error: error: {text}")
    assert (command, col) == (flt, caret)
    # append_filter_err(): the file shows the caret one column on ("indexing is off
    # by one"), capped at the text's length
    pos = min(caret, len(flt))
    shown = read_file(root, f"{KMALLOC}/filter").decode()
    assert shown == f"{flt}\n{'^':>{pos + 1 if pos else 0}}\nparse_error: {text}\n\n"
