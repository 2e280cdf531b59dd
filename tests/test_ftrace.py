"""kernel/ftrace.py and kernel/fgraph.py: records, ops, dispatch, filters (no tracefs)."""

from __future__ import annotations

import errno
import re

import pytest

from tracefs_sim.kernel import fgraph as G
from tracefs_sim.kernel import ftrace as F
from tracefs_sim.kernel.core import Kernel
from tracefs_sim.kernel.errors import KernelError
from tracefs_sim.kernel.ftrace_iter import enabled_functions_text, touched_functions_text
from tracefs_sim.kernel.lib import glob_to_regex, kstrtoul

TRAMP = r"0x[0-9a-f]+"


@pytest.fixture(scope="module")
def booted():
    return Kernel(nr_cpus=2, seed=1)


@pytest.fixture
def k(booted):
    """The shared kernel, with every ops unregistered and filters reset after the test."""
    ft: F.Ftrace = booted.ftrace
    gt = booted.trace.global_trace
    yield booted
    for op in list(ft.ops_list):
        if op is booted.fgraph.graph_ops:
            for sub in list(op.subop_list):
                booted.fgraph.unregister_ftrace_graph(sub.owner)
        elif op.flags & F.OPS_FL_ENABLED:
            ft.unregister_ops(op)
    ft.ftrace_free_filter(gt.ops)
    gt.ops.func = F.ftrace_stub
    st = gt.ftrace_state
    st.function_pids = st.function_no_pids = None
    st.mod_trace.clear()
    booted.fgraph.graph_hash = F.FtraceHash()
    booted.fgraph.graph_notrace_hash = F.FtraceHash()


def idx(k, name: str) -> int:
    i = k.kallsyms.index_of(name)
    assert i is not None
    return i


def names(k, h: F.FtraceHash) -> list[str]:
    return [k.ftrace.names[i] for i in sorted(h.ents)]


@F.ksym("function_trace_call")
def function_trace_call(ip, pip, op, fregs):
    op.owner.append((ip, pip))


# ------------------------------------------------------------------------ parsing
@pytest.mark.parametrize("text,typ,search,neg", [
    ("vfs_read", F.MATCH_FULL, "vfs_read", False),
    ("vfs_*", F.MATCH_FRONT_ONLY, "vfs_", False),
    ("*_read_iter", F.MATCH_END_ONLY, "_read_iter", False),
    ("*rcu*", F.MATCH_MIDDLE_ONLY, "rcu", False),
    ("*rcu*read*lock*", F.MATCH_GLOB, "*rcu*read*lock*", False),
    ("vfs_rea?", F.MATCH_GLOB, "vfs_rea?", False),
    ("!vfs_rea[dx]", F.MATCH_GLOB, "vfs_rea[dx]", True),
    ("12", F.MATCH_INDEX, "12", False),
    ("9pnet", F.MATCH_INDEX, "9pnet", False),
    ("*", F.MATCH_END_ONLY, "", False),
    ("!*", F.MATCH_END_ONLY, "", True),
])
def test_filter_parse_regex(text, typ, search, neg):
    g = F.filter_parse_regex(text)
    assert (g.type, g.search, g.negate) == (typ, search, neg)


@pytest.mark.parametrize("pat,yes,no", [
    ("sch?dule", ["schedule"], ["schedul", "scheduler"]),
    ("[Ss]y[Ss]_*", ["sys_read", "SyS_x"], ["xsys_read"]),
    ("a[!b]c", ["axc"], ["abc"]),
    ("a[a-c]d", ["abd"], ["aed"]),
    ("a[]]b", ["a]b"], ["ab"]),
    ("a[b", ["a[b"], ["ab"]),  # malformed class: '[' is literal
    ("a\\*b", ["a*b"], ["axb"]),
])
def test_glob_match_semantics(pat, yes, no):
    rx = re.compile(glob_to_regex(pat), re.S)
    for s in yes:
        assert rx.fullmatch(s), (pat, s)
    for s in no:
        assert not rx.fullmatch(s), (pat, s)


def test_kstrtoul_bases():
    assert kstrtoul("100") == (0, 100)
    assert kstrtoul("0x10") == (0, 16)
    assert kstrtoul("010") == (0, 8)
    assert kstrtoul("08")[0] == -errno.EINVAL
    assert kstrtoul("1abc")[0] == -errno.EINVAL
    assert kstrtoul("1_0")[0] == -errno.EINVAL


# ------------------------------------------------------------------------ matching
def test_globs_match_reference_kernel(k):
    ft = k.ftrace
    gt = k.trace.global_trace

    def m(pat):
        h = F.FtraceHash()
        ft.probes.process_regex(gt, h, pat, True)
        return h

    assert names(k, m("*rcu*read*lock*")) == [
        "console_srcu_read_lock", "console_srcu_read_unlock", "rcu_read_unlock_trace_special",
        "__srcu_read_lock", "__srcu_read_unlock", "__rcu_read_lock", "rcu_read_unlock_special",
        "__rcu_read_unlock", "bpf_rcu_read_lock", "bpf_rcu_read_unlock"]
    assert len(m("*_read_iter")) == 21
    assert names(k, m("*_read_iter"))[:3] == ["generic_file_read_iter", "shmem_file_read_iter",
                                              "seq_read_iter"]
    assert names(k, m("vfs_rea?")) == ["vfs_read"]
    assert names(k, m("vfs_rea[dx]")) == ["vfs_read"]
    assert names(k, m("vfs_read*")) == ["vfs_readv", "vfs_read", "vfs_readlink"]
    assert len(m("*")) == 43280
    # *write*:mod:!* excludes every module function (golden: 937 lines + 3 probes)
    h = m("*write*:mod:!*")
    assert len(h) == 937 and all(ft.mods[i] is None for i in h)
    # duplicated static names match every record
    dup = [n for n, c in __import__("collections").Counter(ft.names).items() if c > 1][0]
    assert len(m(dup)) == ft.names.count(dup)


def test_unknown_function_is_einval_and_leaves_hash(k):
    ft = k.ftrace
    h = F.FtraceHash([idx(k, "vfs_read")])
    for bad in ("nosuchfunc", "nosuch*", "99999999", "0", "vfs_read:nosuchcmd"):
        with pytest.raises(KernelError) as e:
            ft.probes.process_regex(k.trace.global_trace, h, bad, True)
        assert e.value.errno == errno.EINVAL
    assert names(k, h) == ["vfs_read"]


def test_index_writes_are_one_based(k):
    ft = k.ftrace
    h = F.FtraceHash()
    ft.probes.process_regex(k.trace.global_trace, h, "1", True)
    ft.probes.process_regex(k.trace.global_trace, h, "100", True)
    assert names(k, h) == ["__traceiter_initcall_level", "max_precise_show"]
    ft.probes.process_regex(k.trace.global_trace, h, "!1", True)
    assert names(k, h) == ["max_precise_show"]


def test_mod_command(k):
    ft = k.ftrace
    gt = k.trace.global_trace
    st = gt.ftrace_state
    h = F.FtraceHash()
    # module names starting with a digit parse as MATCH_INDEX: nothing matches, and
    # the module is loaded so nothing is cached either
    for cmd in (":mod:9pnet_virtio", "p9_*:mod:9pnet", "*:mod:9p", "!p9_client_*:mod:9pnet"):
        with pytest.raises(KernelError):
            ft.probes.process_regex(gt, h, cmd, True)
    ft.probes.process_regex(gt, h, "netfs_*:mod:netfs", True)
    assert len(h) == 82 and all(ft.mods[i] == "netfs" for i in h)
    h = F.FtraceHash()
    ft.probes.process_regex(gt, h, "*:mod:nosuchmod", True)
    ft.probes.process_regex(gt, h, "vfs_read:mod:nosuchmod2", True)
    assert [(m.func, m.module) for m in st.mod_trace] == [("vfs_read", "nosuchmod2"), ("*", "nosuchmod")]
    ft.probes.process_regex(gt, h, "!*:mod:nosuchmod", True)
    assert [(m.func, m.module) for m in st.mod_trace] == [("vfs_read", "nosuchmod2")]
    ft.probes.process_regex(gt, h, "!*:mod:*", True)  # blank module glob: matches module records
    assert not h.ents


def test_glob_index_matches_every_record(k):
    """The indexed glob match (its speed is a scripts/bench figure, ftrace_filter_write)
    selects exactly the records a plain match of every name selects."""
    ft = k.ftrace
    gt = k.trace.global_trace
    for pat in ("vfs_*", "*", "*read*", "*pin*lock", "x*"):
        h = F.FtraceHash()
        ft.probes.process_regex(gt, h, pat, True)
        rx = re.compile(glob_to_regex(pat))
        assert set(h.ents) == {i for i, n in enumerate(ft.names) if rx.fullmatch(n)}, pat


# ------------------------------------------------------------------------ ops
def test_function_tracer_ops_enabled_functions(k):
    """golden 11: one ops with a trampoline, then touched after it goes away."""
    ft = k.ftrace
    gt = k.trace.global_trace
    ops = gt.ops
    ops.owner = []
    ft.set_filter(ops, "vfs_read", True)
    ops.func = function_trace_call
    assert ft.site_func[idx(k, "vfs_read")] is None
    ft.register_ops(ops)
    line = (r"vfs_read \(1\)           \ttramp: " + TRAMP +
            r" \(function_trace_call\+0x0/0x110\) ->function_trace_call\+0x0/0x110\n")
    assert re.fullmatch(line, enabled_functions_text(ft))
    assert re.fullmatch(line, touched_functions_text(ft))
    ft.set_filter(ops, "vfs_write", False)
    text = enabled_functions_text(ft)
    assert text.splitlines()[1].startswith("vfs_write (1)           \ttramp: ")
    # the call site reaches the callback with the record ip and the parent ip
    i = idx(k, "vfs_read")
    assert ft.func_entry(i, 0x1234) is None
    assert ops.owner == [(ft.ips[i], 0x1234)]
    ft.unregister_ops(ops)
    assert enabled_functions_text(ft) == ""
    assert touched_functions_text(ft) == ("vfs_read (0)            ->ftrace_stub+0x0/0x20\n"
                                           "vfs_write (0)            ->ftrace_stub+0x0/0x20\n")
    assert ft.site_func[i] is None


@F.ksym("fprobe_handler")
def fprobe_handler(ip, pip, op, fregs):
    op.owner.append(ip)


def test_save_regs_ops_and_list_func(k):
    """golden 11: fprobes (SAVE_REGS, dynamic) → R, then the list function."""
    ft = k.ftrace
    hits1: list[int] = []
    hits2: list[int] = []
    a = F.FtraceOps(fprobe_handler, F.OPS_FL_SAVE_REGS)
    a.owner = hits1
    ft.set_filter(a, "vfs_write")
    ft.register_ops(a)
    assert re.fullmatch(r"vfs_write \(1\) R         \ttramp: " + TRAMP +
                        r" \(fprobe_handler\+0x0/0x240\) ->fprobe_handler\+0x0/0x240\n",
                        enabled_functions_text(ft))
    b = F.FtraceOps(fprobe_handler, F.OPS_FL_SAVE_REGS)
    b.owner = hits2
    ft.set_filter(b, "vfs_write")
    ft.register_ops(b)
    assert enabled_functions_text(ft) == "vfs_write (2) R          ->arch_ftrace_ops_list_func+0x0/0x1d0\n"
    i = idx(k, "vfs_write")
    ft.func_entry(i, 0)
    assert hits1 == hits2 == [ft.ips[i]]
    ft.unregister_ops(b)
    assert "tramp:" in enabled_functions_text(ft)
    ft.func_entry(i, 0)
    assert hits1 == [ft.ips[i]] * 2 and len(hits2) == 1
    ft.unregister_ops(a)
    assert ft.site_func[i] is None


def test_notrace_and_filter_ip(k):
    ft = k.ftrace
    ops = F.FtraceOps(fprobe_handler)
    ops.owner = []
    ft.set_filter(ops, "vfs_*")
    ft.set_notrace(ops, "vfs_write")
    ft.register_ops(ops)
    assert ft.flags[idx(k, "vfs_write")] & F.REF_MAX == 0
    assert ft.flags[idx(k, "vfs_read")] & F.FL_ENABLED
    ft.set_filter_ip(ops, ft.ips[idx(k, "vfs_read")], remove=True)
    assert not ft.flags[idx(k, "vfs_read")] & F.FL_ENABLED
    with pytest.raises(KernelError) as e:
        ft.set_filter_ip(ops, ft.ips[idx(k, "vfs_read")], remove=True)
    assert e.value.errno == errno.ENOENT
    with pytest.raises(KernelError) as e:
        ft.set_filter_ip(ops, 0x1234)
    assert e.value.errno == errno.EINVAL
    ft.set_filter_ips(ops, [ft.ips[idx(k, "schedule")]], reset=True)
    assert [ft.names[i] for i, f in enumerate(ft.flags) if f & F.FL_ENABLED] == ["schedule"]
    with pytest.raises(KernelError) as e:
        ft.set_filter(ops, "nosuchfunc")
    assert e.value.errno == errno.EINVAL
    with pytest.raises(KernelError) as e:
        ft.register_ops(ops)
    assert e.value.errno == errno.EBUSY


def test_ipmodify_conflict(k):
    ft = k.ftrace
    a = F.FtraceOps(fprobe_handler, F.OPS_FL_IPMODIFY | F.OPS_FL_SAVE_REGS)
    b = F.FtraceOps(fprobe_handler, F.OPS_FL_IPMODIFY | F.OPS_FL_SAVE_REGS)
    ft.set_filter(a, "vfs_read")
    ft.set_filter(b, "vfs_read")
    ft.register_ops(a)
    with pytest.raises(KernelError) as e:
        ft.register_ops(b)
    assert e.value.errno == errno.EBUSY
    assert b not in ft.ops_list and not b.flags & F.OPS_FL_ENABLED
    assert " I " in enabled_functions_text(ft) and " M " in enabled_functions_text(ft)
    c = F.FtraceOps(fprobe_handler, F.OPS_FL_IPMODIFY)  # all functions: refused
    with pytest.raises(KernelError) as e:
        ft.register_ops(c)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(KernelError):  # no notrace hash on IPMODIFY ops
        ft.set_notrace(a, "vfs_write")


def test_recursion_protection(k):
    ft = k.ftrace
    i = idx(k, "vfs_read")
    depth = []

    @F.ksym("recursive_handler")
    def handler(ip, pip, op, fregs):
        depth.append(1)
        if len(depth) < 10:
            ft.func_entry(i, 0)  # the handler calls traced code

    a = F.FtraceOps(handler, F.OPS_FL_RECURSION)
    b = F.FtraceOps(handler, F.OPS_FL_RECURSION)
    for op in (a, b):
        ft.set_filter(op, "vfs_read")
        ft.register_ops(op)
    misses = ft.recursion_misses
    ft.func_entry(i, 0)
    # the list function runs both ops; one nested level passes (the transition bit):
    # a, b at level 1, and a, b at level 2 under each of them
    assert len(depth) == 6
    assert ft.recursion_misses > misses
    assert k.sched.current.trace_recursion == 0


def test_pid_filtering(k):
    ft = k.ftrace
    gt = k.trace.global_trace
    ops = gt.ops
    ops.owner = []
    ops.func = function_trace_call
    ft.set_filter(ops, "vfs_read", True)
    ft.register_ops(ops)
    ft.pid.pid_write(gt, b"4242\n", notrace=False)
    assert ft.pid.pid_show(gt, False) == "4242\n"
    assert "ftrace_pid_func" in enabled_functions_text(ft)
    i = idx(k, "vfs_read")
    ft.func_entry(i, 0)
    assert ops.owner == []
    k.sched.set_current(0, k.sched.task(4242, "cat"))
    ft.func_entry(i, 0)
    assert len(ops.owner) == 1
    ft.pid.pid_reset(gt, False)
    assert ft.pid.pid_show(gt, False) == "no pid\n"
    assert "function_trace_call" in enabled_functions_text(ft)
    k.sched.set_current(0, k.sched.idle[0])


# ------------------------------------------------------------------------ fgraph
def test_graph_subops_and_return_hooks(k):
    ft, fg = k.ftrace, k.fgraph
    gt = k.trace.global_trace
    seen = []

    def ent(trace, gops):
        seen.append(("ent", trace.depth))
        return True

    def ret(trace, gops):
        seen.append(("ret", trace.depth, trace.rettime >= trace.calltime))

    gops = G.FgraphOps(ent, ret, private=gt)
    fg.init_ops(gops, gt.ops)
    ft.set_filter(gt.ops, "vfs_*", True)  # shared with the function tracer's ops
    fg.register_ftrace_graph(gops)
    assert gops.ops.func_hash is gt.ops.local_hash
    lines = enabled_functions_text(ft).splitlines()
    assert len(lines) == 78
    assert re.fullmatch(r"vfs_\w+ \(1\)           \ttramp: " + TRAMP +
                        r" \(ftrace_graph_func\+0x0/0x20\) ->ftrace_graph_func\+0x0/0x20", lines[0])
    a, b = idx(k, "vfs_read"), idx(k, "vfs_write")
    rs = k.sched.current.ret_stack
    t1 = ft.func_entry(a, 0)
    t2 = ft.func_entry(b, 0)
    assert len(rs) == 2
    ft.func_exit(b, t2)
    ft.func_exit(a, t1)
    assert seen == [("ent", 0), ("ent", 1), ("ret", 1, True), ("ret", 0, True)]
    assert not rs
    # changing the (shared) filter through the not-enabled function ops updates graph_ops
    ft.set_filter(gt.ops, "schedule", True)
    assert [line.split()[0] for line in enabled_functions_text(ft).splitlines()] == ["schedule"]
    fg.unregister_ftrace_graph(gops)
    assert enabled_functions_text(ft) == ""


def test_graph_all_functions_and_second_user(k):
    ft, fg = k.ftrace, k.fgraph

    g1 = G.FgraphOps(lambda t, g: True, lambda t, g: None)
    g2 = G.FgraphOps(lambda t, g: True, lambda t, g: None)
    ft.set_filter(g2.ops, "vfs_read")
    fg.register_ftrace_graph(g1)
    assert sum(1 for f in ft.flags if f & F.FL_ENABLED) == 43280
    fg.register_ftrace_graph(g2)
    assert g1.idx != g2.idx  # LRU allocation of fgraph_array slots
    i = idx(k, "vfs_read")
    both = (1 << g1.idx) | (1 << g2.idx)
    tok = ft.func_entry(i, 0)
    assert tok is not None and tok[0][-1][3] == both  # both users want the return
    ft.func_exit(i, tok)
    tok = ft.func_entry(idx(k, "schedule"), 0)
    assert tok[0][-1][3] == 1 << g1.idx
    ft.func_exit(0, tok)
    fg.unregister_ftrace_graph(g1)
    assert [ft.names[j] for j, f in enumerate(ft.flags) if f & F.FL_ENABLED] == ["vfs_read"]
    fg.unregister_ftrace_graph(g2)


def test_graph_array_is_limited(k):
    fg = k.fgraph
    users = [G.FgraphOps(lambda t, g: False, lambda t, g: None) for _ in range(17)]
    for u in users:
        k.ftrace.set_filter(u.ops, "schedule")
    for u in users[:16]:
        fg.register_ftrace_graph(u)
    with pytest.raises(KernelError) as e:
        fg.register_ftrace_graph(users[16])
    assert e.value.errno == errno.ENOSPC
    for u in users[:16]:
        fg.unregister_ftrace_graph(u)
    assert fg.active == 0


def test_graph_shadow_stack_overrun(k):
    ft, fg = k.ftrace, k.fgraph
    g = G.FgraphOps(lambda t, gg: True, lambda t, gg: None)
    ft.set_filter(g.ops, "vfs_read")
    fg.register_ftrace_graph(g)
    i = idx(k, "vfs_read")
    toks = [ft.func_entry(i, 0) for _ in range(120)]
    assert sum(1 for t in toks if t is not None) == 98  # one page of longs, 5 per frame
    assert fg.task_state(k.sched.current).overrun == 22
    for t in reversed(toks):
        ft.func_exit(i, t)
    assert not k.sched.current.ret_stack
    fg.unregister_ftrace_graph(g)


def test_graph_filter_hash(k):
    fg = k.fgraph
    it = fg.graph_open(G.GRAPH_FILTER_FUNCTION, False, True, True)
    it.write(b"vfs_read\n")
    with pytest.raises(KernelError):
        it.write(b"nosuch\n")
    with pytest.raises(KernelError):  # no index form for graph filters
        it.write(b"1\n")
    it.release()
    assert fg.graph_show_text(G.GRAPH_FILTER_FUNCTION) == "vfs_read\n"
    assert fg.graph_show_text(G.GRAPH_FILTER_NOTRACE) == "#### no functions disabled ####\n"
    assert fg.graph_addr(k.ftrace.ips[idx(k, "vfs_read")])
    assert not fg.graph_addr(k.ftrace.ips[idx(k, "vfs_write")])


def test_dyn_ftrace_total_info(k):
    assert re.fullmatch(r"43280 pages:\d+ groups: \d+\n", k.ftrace.records.dyn_ftrace_total_info_text())


def test_module_api_names():
    """The names modules and examples use stay importable from kernel.ftrace, and the
    Ftrace object keeps the kernel's ftrace API by its C names."""
    for name in ("FtraceOps", "FtraceHash", "Ftrace", "ksym", "ftrace_stub", "OPS_FL_SAVE_REGS",
                 "OPS_FL_IPMODIFY", "FL_ENABLED", "REF_MAX", "ITER_FILTER", "MATCH_GLOB",
                 "FuncProbeOps", "TrFtraceState", "filter_parse_regex"):
        assert name in F.__all__ and hasattr(F, name), name
    for name in ("register_ftrace_function", "unregister_ftrace_function", "ftrace_set_filter",
                 "ftrace_set_notrace", "ftrace_set_filter_ip", "ftrace_set_filter_ips",
                 "ftrace_free_filter", "ftrace_location", "ftrace_startup_subops",
                 "ftrace_shutdown_subops", "register_ftrace_command", "unregister_ftrace_command",
                 "register_ftrace_function_probe", "unregister_ftrace_function_probe_func",
                 "func_entry", "func_exit", "push_ret_hook", "recursion_trylock", "ip_to_index",
                 "ftrace_test_recursion_trylock", "ftrace_test_recursion_unlock",
                 "ftrace_ops_get_func", "register_ops", "unregister_ops", "set_filter",
                 "set_notrace", "set_filter_ip", "set_filter_ips"):
        assert callable(getattr(F.Ftrace, name)), name
    for name in ("FTRACE_OPS_FL_SAVE_REGS", "FTRACE_OPS_FL_IPMODIFY", "FTRACE_OPS_FL_RCU",
                 "FTRACE_OPS_FL_RECURSION", "FTRACE_OPS_FL_PERMANENT", "MCOUNT_INSN_SIZE",
                 "ftrace_get_regs", "ftrace_regs_set_instruction_pointer"):
        assert name in F.__all__ and hasattr(F, name), name
