"""The dyn_ftrace records and the filter language that selects them (kernel/trace/ftrace.c).

One ``dyn_ftrace`` record per traceable function, indexed like
``available_filter_functions`` (``kallsyms.names/addrs/mods``).  A record is an int of
flags in ``FtraceRecords.flags[i]`` (low 19 bits: how many ops want the site; high bits:
``FL_ENABLED``, ``FL_REGS``… as include/linux/ftrace.h) and the patched call site
``site_func[i]`` (None while it is a NOP).  Hashes hold record indices.

Matching (``match_records``): ``filter_parse_regex`` types (full, ``foo*``, ``*foo``,
``*foo*``, glob with ``?``/``[]``/``\\``, digits = 1-based index), ``!`` removes, an
optional module glob (``:mod:``).  Scans of every name are indexed (sorted names for
``foo*``, one joined string for globs) and remembered per pattern, since a filter
write may repeat one glob thousands of times.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .ftrace_ops import FL_DISABLED, HASH_MAX_BITS, FtraceHash, SiteFunc, fls, hash_64
from .lib import PAGE_SIZE, glob_match, glob_to_regex, kstrtoul

if TYPE_CHECKING:
    from .kallsyms import Kallsyms

# enum regex_type (trace.h)
MATCH_FULL, MATCH_FRONT_ONLY, MATCH_MIDDLE_ONLY, MATCH_END_ONLY, MATCH_GLOB, MATCH_INDEX = range(6)

# sizeof(struct dyn_ftrace) on x86_64, for dyn_ftrace_total_info
ENTRY_SIZE = 16


@dataclass(slots=True)
class Glob:
    """``struct ftrace_glob`` after filter_parse_regex()."""

    type: int
    search: str
    negate: bool

    @property
    def len(self) -> int:
        return len(self.search)


def filter_parse_regex(buff: str) -> Glob:
    """trace_events_filter.c filter_parse_regex(): type, search string and '!'."""
    negate = buff.startswith("!")
    if negate:
        buff = buff[1:]
    if buff[:1].isdigit() and buff[:1].isascii():
        return Glob(MATCH_INDEX, buff, negate)
    typ = MATCH_FULL
    search = buff
    n = len(buff)
    for i, c in enumerate(buff):
        if c == "*":
            if i == 0:
                typ = MATCH_END_ONLY
            elif i == n - 1:
                typ = MATCH_MIDDLE_ONLY if typ == MATCH_END_ONLY else MATCH_FRONT_ONLY
                search = buff[:i]
                break
            else:
                return Glob(MATCH_GLOB, buff, negate)
        elif c in "[?\\":
            return Glob(MATCH_GLOB, buff, negate)
    if buff.startswith("*"):
        search = search[1:]
    return Glob(typ, search, negate)


def match_str(text: str, g: Glob) -> bool:
    """ftrace_match() of one string."""
    typ, s = g.type, g.search
    if typ == MATCH_FULL:
        return text == s
    if typ == MATCH_FRONT_ONLY:
        return text.startswith(s)
    if typ == MATCH_MIDDLE_ONLY:
        return s in text
    if typ == MATCH_END_ONLY:
        return text.endswith(s)
    if typ == MATCH_GLOB:
        return glob_match(s, text)
    return False  # MATCH_INDEX: ftrace_match has no case for it


def _regex_for(g: Glob) -> re.Pattern[str]:
    """A multiline regex finding the lines of the joined record names ``g`` matches."""
    s = re.escape(g.search)
    if g.type == MATCH_FRONT_ONLY:
        body = s + "[^\n]*"
    elif g.type == MATCH_MIDDLE_ONLY:
        body = "[^\n]*" + s + "[^\n]*"
    elif g.type == MATCH_END_ONLY:
        body = "[^\n]*" + s
    else:
        body = glob_to_regex(g.search, multiline=True)
    return re.compile("^" + body + "$", re.M)


class FtraceRecords:
    """The records of one kernel (ftrace_pages) and the lookups over them."""

    def __init__(self, kallsyms: Kallsyms) -> None:
        self.kallsyms = kallsyms
        self.names: list[str] = list(kallsyms.names)
        self.ips: list[int] = list(kallsyms.addrs)
        self.mods: list[str | None] = list(kallsyms.mods)    # None or a module name
        n = len(self.names)
        self.nr_records = n
        self.flags: list[int] = [0] * n
        self.site_func: list[SiteFunc | None] = [None] * n
        self.nr_disabled = 0  # records with FL_DISABLED (none in the reference kernel)
        self._match_cache: dict[tuple[int, str, int], tuple[int, ...]] = {}
        self._by_mod: dict[str | None, list[int]] = {}
        self._by_mod_key = -1
        self._ip_index: dict[int, int] | None = None
        self._by_name: dict[str, list[int]] | None = None
        self._joined: str | None = None
        self._line_starts: list[int] = []
        self._sorted: tuple[list[str], list[int]] | None = None
        self._avail_text: str | None = None
        self._avail_addrs_text: str | None = None

    # ------------------------------------------------------------------ names
    def rec_name(self, i: int) -> str:
        """print_rec()/%ps of a record: ``name`` or ``name [module]``."""
        m = self.mods[i]
        return f"{self.names[i]} [{m}]" if m else self.names[i]

    def ip_to_index(self, ip: int) -> int | None:
        """The record whose rec->ip is exactly ``ip``."""
        if self._ip_index is None:
            self._ip_index = {a: i for i, a in enumerate(self.ips)}
        return self._ip_index.get(ip)

    def ftrace_location(self, ip: int) -> int | None:
        """ftrace_location(): the record at ``ip``, or the one of the function that
        starts at ``ip`` (sym+0 maps to its __fentry__ site, after the endbr64)."""
        i = self.ip_to_index(ip)
        if i is None:
            res = self.kallsyms.lookup_addr(ip)
            if res is not None and res[1] == 0:
                j = bisect.bisect_left(self.ips, ip)
                if j < len(self.ips) and self.ips[j] < ip + res[2]:
                    i = j
        return i

    def _name_index(self) -> dict[str, list[int]]:
        if self._by_name is None:
            d: dict[str, list[int]] = {}
            for i, nm in enumerate(self.names):
                d.setdefault(nm, []).append(i)
            self._by_name = d
        return self._by_name

    def _sorted_names(self) -> tuple[list[str], list[int]]:
        if self._sorted is None:
            order = sorted(range(self.nr_records), key=self.names.__getitem__)
            self._sorted = ([self.names[i] for i in order], order)
        return self._sorted

    def _joined_names(self) -> tuple[str, list[int]]:
        if self._joined is None:
            self._joined = "\n".join(self.names) + "\n"
            starts = []
            pos = 0
            for nm in self.names:
                starts.append(pos)
                pos += len(nm) + 1
            self._line_starts = starts
        return self._joined, self._line_starts

    def records_by_mod(self) -> dict[str | None, list[int]]:
        """Record indexes per module (None: the core kernel), rebuilt when records change."""
        key = self.nr_records
        if self._by_mod_key != key:
            groups: dict[str | None, list[int]] = {}
            for i, m in enumerate(self.mods):
                groups.setdefault(m, []).append(i)
            self._by_mod, self._by_mod_key = groups, key
        return self._by_mod

    def module_exists(self, module: str) -> bool:
        return module in self.records_by_mod()

    # ------------------------------------------------------------------ matching
    def _match_func(self, g: Glob, cand: Iterable[int] | None = None) -> list[int]:
        """ftrace_match() of every record name (or of ``cand``) against ``g``.  Scans of
        every record are remembered per pattern (the record list only grows by modules):
        a write repeating one glob thousands of times scans once."""
        if cand is not None or g.type == MATCH_FULL:
            return self._match_func_scan(g, cand)
        key = (g.type, g.search, self.nr_records)
        hit = self._match_cache.get(key)
        if hit is None:
            hit = tuple(self._match_func_scan(g, None))
            if len(self._match_cache) >= 64:
                del self._match_cache[next(iter(self._match_cache))]
            self._match_cache[key] = hit
        return list(hit)

    def _match_func_scan(self, g: Glob, cand: Iterable[int] | None) -> list[int]:
        names = self.names
        typ, s = g.type, g.search
        if typ == MATCH_FULL:
            hits = self._name_index().get(s, [])
            if cand is None:
                return list(hits)
            cs = set(cand)
            return [i for i in hits if i in cs]
        if typ != MATCH_GLOB and not s:  # "*", "**", "foo" with nothing left: everything
            return list(range(self.nr_records)) if cand is None else list(cand)
        if cand is not None:
            cands = list(cand)
            if typ == MATCH_FRONT_ONLY:
                return [i for i in cands if names[i].startswith(s)]
            if typ == MATCH_MIDDLE_ONLY:
                return [i for i in cands if s in names[i]]
            if typ == MATCH_END_ONLY:
                return [i for i in cands if names[i].endswith(s)]
            if typ == MATCH_GLOB:
                rx = re.compile(glob_to_regex(s), re.S)
                return [i for i in cands if rx.fullmatch(names[i])]
            return []
        if typ == MATCH_MIDDLE_ONLY:
            return [i for i, nm in enumerate(names) if s in nm]
        if typ == MATCH_END_ONLY:
            return [i for i, nm in enumerate(names) if nm.endswith(s)]
        if typ == MATCH_FRONT_ONLY:
            snames, sidx = self._sorted_names()
            lo = bisect.bisect_left(snames, s)
            out = []
            for j in range(lo, len(snames)):
                if not snames[j].startswith(s):
                    break
                out.append(sidx[j])
            out.sort()
            return out
        joined, starts = self._joined_names()
        return [bisect.bisect_right(starts, m.start()) - 1 for m in _regex_for(g).finditer(joined)]

    def match_record_set(self, func_g: Glob, mod_g: Glob | None, exclude_mod: bool) -> list[int]:
        """The records ftrace_match_record() accepts (DISABLED records skipped)."""
        if mod_g is None:
            hits = self._match_func(func_g)
        else:
            mods = self.mods
            if not mod_g.len:
                # blank module glob: module records, or core ones when negated
                if exclude_mod:
                    cand = [i for i, m in enumerate(mods) if m is None]
                else:
                    cand = [i for i, m in enumerate(mods) if m is not None]
            else:
                # match each module name once, then take its records (in record order)
                cand = sorted(i for m, idx in self.records_by_mod().items()
                              if (m is not None and match_str(m, mod_g)) != exclude_mod
                              for i in idx)
            hits = cand if not func_g.len else self._match_func(func_g, cand)
        if not self.nr_disabled:
            return hits
        flags = self.flags
        return [i for i in hits if not flags[i] & FL_DISABLED]

    def match_records(self, hash_: FtraceHash, func: str | None, mod: str | None) -> int:
        """match_records(): add (or with '!' remove) matching records; 1 if any matched."""
        func_g = filter_parse_regex(func) if func is not None else Glob(MATCH_FULL, "", False)
        mod_g: Glob | None = None
        exclude_mod = False
        if mod is not None:
            mod_g = filter_parse_regex(mod)
            exclude_mod = mod_g.negate
        clear = func_g.negate
        if func_g.type == MATCH_INDEX:
            return self._add_rec_by_index(hash_, func_g, clear)
        hits = self.match_record_set(func_g, mod_g, exclude_mod)
        ents = hash_.ents
        if clear:
            for i in hits:
                ents.pop(i, None)
        else:
            ents.update(dict.fromkeys(hits))
        return 1 if hits else 0

    def _add_rec_by_index(self, hash_: FtraceHash, g: Glob, clear: bool) -> int:
        err, idx = kstrtoul(g.search)
        if err:
            return 0
        idx -= 1
        if idx < 0 or idx >= self.nr_records:
            return 0
        if clear:
            hash_.ents.pop(idx, None)
        elif idx not in hash_.ents:
            hash_.ents[idx] = None
        return 1

    def ftrace_match_records(self, hash_: FtraceHash, buff: str) -> int:
        return self.match_records(hash_, buff, None)

    # ------------------------------------------------------------------ listings
    def hash_display_order(self, idxs: Iterable[int]) -> list[int]:
        """Iteration order of a committed ftrace_hash (bucket order, newest first).

        The kernel walks hash buckets (hash_64(ip, fls(count/2))) and each bucket from
        its head; entries are added at the head.
        """
        lst = list(idxs)
        bits = min(fls(len(lst) // 2), HASH_MAX_BITS)
        ips = self.ips
        keyed = [(hash_64(ips[i], bits), -n, i) for n, i in enumerate(lst)]
        keyed.sort()
        return [i for _, _, i in keyed]

    def available_filter_functions_text(self) -> str:
        if self._avail_text is None:
            self._avail_text = "".join(self.rec_name(i) + "\n" for i in range(self.nr_records))
        return self._avail_text

    def available_filter_functions_addrs_text(self) -> str:
        if self._avail_addrs_text is None:
            self._avail_addrs_text = "".join(f"{self.ips[i]:x} {self.rec_name(i)}\n"
                                             for i in range(self.nr_records))
        return self._avail_addrs_text

    def dyn_ftrace_total_info_text(self) -> str:
        """tracing_read_dyn_info(): records, pages and page groups (vmlinux + modules)."""
        groups: dict[str | None, int] = {}
        for m in self.mods:
            groups[m] = groups.get(m, 0) + 1
        pages = ngroups = 0
        for count in groups.values():
            left = count
            while left:
                npages = -(-left * ENTRY_SIZE // PAGE_SIZE)
                order = fls(npages) - 1
                pages += 1 << order
                ngroups += 1
                cnt = (PAGE_SIZE << order) // ENTRY_SIZE
                left -= min(cnt, left)
        return f"{self.nr_records} pages:{pages} groups: {ngroups}\n"
