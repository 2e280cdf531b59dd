"""Kernel BTF (``/sys/kernel/btf/vmlinux``) parsed from the captured raw blob.

The simulated kernel needs BTF for the same things the real one uses it for in
kernel/trace: function prototypes of fprobe/kprobe events (``$arg*``, argument
names and types) and struct member offsets for ``file->f_path.dentry`` style
fetch args (kernel/trace/trace_btf.c, trace_probe.c).

Layout follows include/uapi/linux/btf.h: a 24-byte ``struct btf_header``, then the
type section (12-byte ``struct btf_type`` records each followed by kind-specific
data), then the string section.  Parsing is lazy: the blob is read and indexed on
first use (one pass recording each type's byte offset and the FUNC names), and
``Type`` objects are decoded on demand and cached per ``BTF`` instance.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass, field

from .refdata import data_bytes

BTF_MAGIC = 0xEB9F

KIND_NAMES = (
    "unkn", "int", "ptr", "array", "struct", "union", "enum", "fwd", "typedef",
    "volatile", "const", "restrict", "func", "func_proto", "var", "datasec", "float",
    "decl_tag", "type_tag", "enum64",
)
# btf_type_is_modifier(): what btf_type_skip_modifiers() walks through.
MODIFIERS = frozenset({"typedef", "volatile", "const", "restrict", "type_tag"})
# Qualifiers that print as a C qualifier keyword.
_QUALIFIERS = {"const": "const", "volatile": "volatile", "restrict": "restrict"}

BTF_INT_SIGNED = 1 << 0
BTF_INT_CHAR = 1 << 1
BTF_INT_BOOL = 1 << 2

BTF_FUNC_STATIC = 0
BTF_FUNC_GLOBAL = 1
BTF_FUNC_EXTERN = 2

# Bytes of kind-specific data after struct btf_type: (fixed, per vlen item).
_EXTRA = {
    1: (4, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 13: (0, 8),
    14: (4, 0), 15: (0, 12), 17: (4, 0), 19: (0, 12),
}

_U32 = struct.Struct("<I")
_TYPE = struct.Struct("<III")
_PAIR = struct.Struct("<II")
_TRIPLE = struct.Struct("<III")


@dataclass(frozen=True, slots=True)
class Type:
    """One decoded BTF type.

    ``ref`` is the referenced type id: pointee (ptr), aliased type (typedef and
    qualifiers), FUNC_PROTO (func), return type (func_proto), element type (array),
    variable type (var).  The ``int_*`` fields decode BTF_KIND_INT; ``kflag`` is the
    kind_flag bit (bitfield member offsets for struct/union, union for fwd, signed
    for enum).  ``vlen`` is the member/param/enumerator count, or the linkage of a FUNC.
    The attribute names match the probe parser's ``BtfType`` protocol.
    """

    id: int
    kind: str
    name: str
    size: int = 0
    ref: int = 0
    vlen: int = 0
    kflag: bool = False
    int_bits: int = 0
    int_signed: bool = False
    int_offset: int = 0
    int_encoding: int = 0
    nelems: int = 0


VOID = Type(0, "void", "void")


@dataclass(frozen=True, slots=True)
class Member:
    """A struct/union member; ``bit_offset`` is relative to the containing type."""

    name: str
    type: Type
    bit_offset: int
    bitfield_size: int = 0


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: Type


@dataclass(frozen=True, slots=True)
class FuncProto:
    name: str
    ret: Type
    params: list[Param] = field(default_factory=list)
    variadic: bool = False
    linkage: int = BTF_FUNC_GLOBAL


@dataclass(frozen=True, slots=True)
class Enumerator:
    name: str
    value: int


def _load_blob() -> bytes:
    return data_bytes("vmlinux.btf.gz")


class BTF:
    """The vmlinux BTF.  ``BTF()`` loads the packaged blob; ``BTF(blob)`` parses bytes."""

    def __init__(self, blob: bytes | None = None) -> None:
        self._blob = blob
        self._parsed = False
        self._offs = array("I")       # byte offset of each type id (index 0 = void)
        self._funcs: dict[str, int] = {}
        self._named: dict[tuple[str, str], int] | None = None
        self._cache: dict[int, Type] = {0: VOID}
        self._types_start = 0
        self._str_start = 0
        self._str_end = 0
        # module functions: vmlinux BTF lacks them, the captured prototypes have them
        self._mod_protos: dict[str, list[str]] | None = None
        self._synth: dict[int, Type] = {}
        self._spelling: dict[int, str] = {}
        self._protos: dict[str, FuncProto | None] = {}

    # ------------------------------------------------------------------ parsing
    def _ensure(self) -> None:
        if self._parsed:
            return
        blob = self._blob if self._blob is not None else _load_blob()
        self._blob = blob
        magic, version, _flags, hdr_len = struct.unpack_from("<HBBI", blob, 0)
        if magic != BTF_MAGIC or version != 1:
            raise ValueError("not a BTF blob")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", blob, 8)
        start = hdr_len + type_off
        end = start + type_len
        self._types_start = start
        self._str_start = hdr_len + str_off
        self._str_end = self._str_start + str_len
        offs = self._offs
        offs.append(0)
        funcs = self._funcs
        strs = blob
        sbase = self._str_start
        unpack = _TYPE.unpack_from
        extra = _EXTRA
        pos = start
        while pos < end:
            offs.append(pos)
            name_off, info, _ = unpack(blob, pos)
            kind = (info >> 24) & 0x1F
            if kind == 12 and name_off:
                s = sbase + name_off
                name = strs[s:strs.index(b"\0", s)].decode()
                funcs.setdefault(name, len(offs) - 1)
            ex = extra.get(kind)
            pos += 12
            if ex is not None:
                pos += ex[0] + ex[1] * (info & 0xFFFF)
        self._parsed = True

    def _str(self, off: int) -> str:
        if not off:
            return ""
        blob = self._blob
        assert blob is not None
        s = self._str_start + off
        return blob[s:blob.index(b"\0", s)].decode()

    def __len__(self) -> int:
        """Number of type ids including void (btf_nr_types)."""
        self._ensure()
        return len(self._offs)

    def get(self, tid: int) -> Type | None:
        """btf_type_by_id(): the type with id ``tid`` or None if out of range."""
        t = self._cache.get(tid)
        if t is not None:
            return t
        self._ensure()
        if tid <= 0 or tid >= len(self._offs):
            return None
        blob = self._blob
        assert blob is not None
        pos = self._offs[tid]
        name_off, info, size_type = _TYPE.unpack_from(blob, pos)
        kind_no = (info >> 24) & 0x1F
        kind = KIND_NAMES[kind_no] if kind_no < len(KIND_NAMES) else f"kind{kind_no}"
        vlen = info & 0xFFFF
        kflag = bool(info >> 31)
        name = self._str(name_off)
        kw: dict = {}
        if kind_no in (1, 4, 5, 6, 15, 16, 19):
            kw["size"] = size_type
        else:
            kw["ref"] = size_type
        if kind_no == 1:
            (enc,) = _U32.unpack_from(blob, pos + 12)
            kw["int_encoding"] = (enc >> 24) & 0x0F
            kw["int_offset"] = (enc >> 16) & 0xFF
            kw["int_bits"] = enc & 0xFF
            kw["int_signed"] = bool(kw["int_encoding"] & BTF_INT_SIGNED)
        elif kind_no == 2:
            kw["size"] = 8
        elif kind_no == 3:
            elem, _index, nelems = _TRIPLE.unpack_from(blob, pos + 12)
            kw["ref"] = elem
            kw["nelems"] = nelems
        t = Type(tid, kind, name, vlen=vlen, kflag=kflag, **kw)
        if kind_no == 3:
            et = self.resolve(elem)
            t = Type(tid, kind, name, size=(self.sizeof(et) if et else 0) * nelems,
                     ref=elem, vlen=vlen, kflag=kflag, nelems=nelems)
        self._cache[tid] = t
        return t

    def _as_type(self, t: Type | int) -> Type | None:
        return self.get(t) if isinstance(t, int) else t

    # ------------------------------------------------------------------ functions
    def func_id(self, name: str) -> int | None:
        """Type id of the BTF_KIND_FUNC named ``name`` (bpf_find_btf_id)."""
        self._ensure()
        return self._funcs.get(name)

    def func_names(self) -> list[str]:
        self._ensure()
        return list(self._funcs)

    def func_proto(self, name: str) -> FuncProto | None:
        """btf_find_func_proto(): the prototype of function ``name`` or None (no BTF).

        Module functions (9p, netfs, …) have their BTF in module BTF objects that were
        not captured; their prototypes come from the captured prototype list instead,
        with types rebuilt from the C spelling onto vmlinux types (see _synth_type).
        """
        if name in self._protos:
            return self._protos[name]
        proto = self._func_proto(name)
        self._protos[name] = proto
        return proto

    def _func_proto(self, name: str) -> FuncProto | None:
        fid = self.func_id(name)
        if fid is None:
            return self._module_proto(name)
        func = self.get(fid)
        assert func is not None
        proto = self.get(func.ref)
        if proto is None or proto.kind != "func_proto":
            return None
        params, variadic = self._params(proto)
        ret = self.get(proto.ref) or VOID
        return FuncProto(name, ret, params, variadic, func.vlen)

    def _module_proto(self, name: str) -> FuncProto | None:
        if self._mod_protos is None:
            rows: dict[str, list[str]] = {}
            text = data_bytes("btf_protos.tsv.gz").decode()
            for line in text.splitlines():
                f = line.split("\t")
                if f[0] not in self._funcs:
                    rows[f[0]] = f[1:]
            self._mod_protos = rows
        row = self._mod_protos.get(name)
        if row is None:
            return None
        params: list[Param] = []
        variadic = False
        for i in range(1, len(row) - 1, 2):
            if row[i] == "...":
                variadic = True
                break
            params.append(Param(row[i + 1], self._synth_type(row[i])))
        return FuncProto(name, self._synth_type(row[0]), params, variadic, BTF_FUNC_GLOBAL)

    def _new_synth(self, kind: str, name: str = "", size: int = 0, ref: int = 0,
                   spelling: str | None = None) -> Type:
        tid = len(self._offs) + len(self._synth)
        t = Type(tid, kind, name, size=size, ref=ref)
        self._synth[tid] = t
        self._cache[tid] = t
        if spelling is not None:
            self._spelling[tid] = spelling
        return t

    def _synth_type(self, spelling: str) -> Type:
        """A type for a captured C spelling, built on vmlinux types where they exist.

        Handles ``[const] [volatile] base [*[const]]…``; anything else (function
        pointers, arrays) becomes a pointer that prints with its original spelling.
        """
        spelling = spelling.strip()
        if spelling == "void":
            return VOID
        if "(" in spelling or "[" in spelling:
            return self._new_synth("ptr", size=8, spelling=spelling)
        head, star, tail = spelling.partition("*")
        words = head.split()
        quals = [w for w in words if w in ("const", "volatile")]
        base_words = [w for w in words if w not in ("const", "volatile")]
        base_name = " ".join(base_words)
        t: Type | None = None
        if base_words and base_words[0] in ("struct", "union", "enum"):
            kind = base_words[0]
            tag = " ".join(base_words[1:])
            t = self.find_type(tag, kind) or (self.find_type(tag, "enum64") if kind == "enum" else None)
            if t is None:
                t = self._new_synth("fwd", tag, spelling=base_name)
        else:
            t = (self.find_type(base_name, "typedef") or self.find_type(base_name, "int")
                 or self.find_type(base_name, "float"))
            if t is None:
                t = self._new_synth("int", base_name, size=8)
        for q in reversed(quals):
            t = self._new_synth(q, ref=t.id)
        if star:
            rest = "*" + tail
            for part in rest.split("*")[1:]:
                t = self._new_synth("ptr", size=8, ref=t.id)
                for q in part.split():
                    if q in ("const", "volatile", "restrict"):
                        t = self._new_synth(q, ref=t.id)
        return t

    def _params(self, proto: Type) -> tuple[list[Param], bool]:
        blob = self._blob
        assert blob is not None
        pos = self._offs[proto.id] + 12
        params: list[Param] = []
        variadic = False
        for i in range(proto.vlen):
            name_off, tid = _PAIR.unpack_from(blob, pos + 8 * i)
            if tid == 0 and i == proto.vlen - 1:
                variadic = True     # a trailing void param means "..."
                break
            params.append(Param(self._str(name_off), self.get(tid) or VOID))
        return params, variadic

    # ------------------------------------------------------------------ lookup
    def find_type(self, name: str, kind: str = "struct") -> Type | None:
        """The first type of ``kind`` named ``name`` (btf_find_by_name_kind)."""
        self._ensure()
        if self._named is None:
            named: dict[tuple[str, str], int] = {}
            blob = self._blob
            assert blob is not None
            for tid in range(1, len(self._offs)):
                name_off, info, _ = _TYPE.unpack_from(blob, self._offs[tid])
                if name_off:
                    k = (info >> 24) & 0x1F
                    if k < len(KIND_NAMES):
                        named.setdefault((KIND_NAMES[k], self._str(name_off)), tid)
            self._named = named
        tid = self._named.get((kind, name))
        return self.get(tid) if tid is not None else None

    # ------------------------------------------------------------------ helpers
    def resolve(self, t: Type | int) -> Type | None:
        """btf_type_skip_modifiers(): skip typedef/const/volatile/restrict/type_tag."""
        ty = self._as_type(t)
        n = 0
        while ty is not None and ty.kind in MODIFIERS and n < 64:
            ty = self.get(ty.ref)
            n += 1
        return ty

    def resolve_id(self, tid: int) -> int:
        """The type id after skipping modifiers (``*res_id`` of btf_type_skip_modifiers)."""
        t = self.resolve(tid)
        return t.id if t is not None else 0

    def skip_modifiers(self, tid: int) -> Type | None:
        return self.resolve(tid)

    def pointee(self, t: Type | int) -> Type | None:
        """What a pointer (after modifiers) points to, unresolved; None if not a pointer."""
        ty = self.resolve(t)
        if ty is None or ty.kind != "ptr":
            return None
        return self.get(ty.ref)

    def is_signed(self, t: Type | int) -> bool:
        ty = self.resolve(t)
        if ty is None:
            return False
        if ty.kind == "int":
            return ty.int_signed
        if ty.kind in ("enum", "enum64"):
            return ty.kflag
        return False

    def sizeof(self, t: Type | int) -> int:
        """Byte size (btf_type_size after resolving); pointers are 8, void/func 0."""
        ty = self.resolve(t)
        if ty is None:
            return 0
        return ty.size

    def _vlen_data(self, ty: Type | None, kinds: tuple[str, str], what: str) -> tuple[Type, bytes, int]:
        """``ty`` (one of ``kinds``, else ValueError ``what``), the blob and the offset of
        the vlen records that follow its struct btf_type."""
        if ty is None or ty.kind not in kinds:
            raise ValueError(what)
        blob = self._blob
        assert blob is not None
        return ty, blob, self._offs[ty.id] + 12

    def members(self, t: Type | int) -> list[Member]:
        """Members of a struct/union in declaration order, anonymous ones with name ''."""
        ty, blob, pos = self._vlen_data(self._as_type(t), ("struct", "union"), "not a struct or union")
        out: list[Member] = []
        for i in range(ty.vlen):
            name_off, tid, off = _TRIPLE.unpack_from(blob, pos + 12 * i)
            if ty.kflag:
                bit_off, bsize = off & 0xFFFFFF, off >> 24
            else:
                bit_off, bsize = off, 0
            out.append(Member(self._str(name_off), self.get(tid) or VOID, bit_off, bsize))
        return out

    def enumerators(self, t: Type | int) -> list[Enumerator]:
        ty, blob, pos = self._vlen_data(self.resolve(t), ("enum", "enum64"), "not an enum")
        out = []
        for i in range(ty.vlen):
            if ty.kind == "enum":
                name_off, val = struct.unpack_from("<Ii", blob, pos + 8 * i)
                if not ty.kflag:
                    val &= 0xFFFFFFFF
            else:
                name_off, lo, hi = _TRIPLE.unpack_from(blob, pos + 12 * i)
                val = (hi << 32) | lo
                if ty.kflag and val >> 63:
                    val -= 1 << 64
            out.append(Enumerator(self._str(name_off), val))
        return out

    def find_struct_member(self, t: Type | int, name: str
                           ) -> tuple[Member, int, Type] | None:
        """btf_find_struct_member(): (member, anon_offset, containing type) or None.

        Same search order as kernel/trace/trace_btf.c: named members of the current
        type first, anonymous struct/union members pushed on a 16-deep stack and
        searched last-in first-out.  Raises ValueError if ``t`` is not a struct/union.
        """
        ty = self._as_type(t)
        if ty is None or ty.kind not in ("struct", "union"):
            raise ValueError("not a struct or union")
        stack: list[tuple[Type, int]] = []
        cur_off = 0
        while True:
            for m in self.members(ty):
                if not m.name:
                    mt = self.resolve(m.type)
                    if mt is not None and mt.kind in ("struct", "union") and len(stack) < 16:
                        stack.append((mt, cur_off + m.bit_offset))
                elif m.name == name:
                    return m, cur_off, ty
            if not stack:
                return None
            ty, cur_off = stack.pop()

    def find_member(self, t: Type | int, name: str) -> tuple[int, int, int, int, bool] | None:
        """The probe parser's view of btf_find_struct_member (see trace_probe.ProbeBtf):
        (member type id, bit offset in its container, bitfield size, anon offset, container kflag)."""
        found = self.find_struct_member(t, name)
        if found is None:
            return None
        m, anon, container = found
        return m.type.id, m.bit_offset, m.bitfield_size, anon, container.kflag

    def member_path(self, t: Type | int, path: str) -> tuple[Type, int]:
        """Resolve a C member chain like ``f_path.dentry->d_name.name`` from struct ``t``.

        Returns (type of the last member, byte offset of it within the last
        dereferenced struct).  Raises KeyError for an unknown member, ValueError when
        '->' is applied to a non-pointer or '.' to a non-struct.
        """
        ty = self.resolve(t)
        bits = 0
        i = 0
        tok = ""
        parts: list[tuple[str, str]] = []   # (separator before, name)
        sep = "."
        while i <= len(path):
            if i == len(path) or path[i] == "." or path.startswith("->", i):
                parts.append((sep, tok))
                tok = ""
                if i < len(path):
                    sep = "->" if path[i] == "-" else "."
                    i += 2 if sep == "->" else 1
                    continue
                break
            tok += path[i]
            i += 1
        last: Type | None = ty
        for sep, name in parts:
            if sep == "->":
                if last is None or last.kind != "ptr":
                    raise ValueError(f"{name}: not a pointer")
                last = self.resolve(last.ref)
                bits = 0
            if last is None or last.kind not in ("struct", "union"):
                raise ValueError(f"{name}: not a struct")
            found = self.find_struct_member(last, name)
            if found is None:
                raise KeyError(name)
            m, anon, _ = found
            bits += anon + m.bit_offset
            last = self.resolve(m.type)
        assert last is not None
        return last, bits // 8

    # ------------------------------------------------------------------ C spelling
    def base_name(self, t: Type) -> str:
        if t.id in self._spelling:
            return self._spelling[t.id]
        if t.kind == "void":
            return "void"
        if t.kind in ("struct", "union"):
            return f"{t.kind} {t.name}" if t.name else f"{t.kind} {{...}}"
        if t.kind in ("enum", "enum64"):
            return f"enum {t.name}" if t.name else "enum {...}"
        if t.kind == "fwd":
            return f"{'union' if t.kflag else 'struct'} {t.name}"
        return t.name

    def type_str(self, t: Type | int, declarator: str = "") -> str:
        """The C spelling of a type, the way the captured prototypes print it.

        ``const struct file *``, ``char *const``, ``int (*)(struct device *, void *)``,
        ``const char (**)[32]``; ``declarator`` is an optional inner declarator (name).
        """
        ty = self._as_type(t) or VOID
        if ty.id in self._spelling and not declarator:
            return self._spelling[ty.id]
        inner = declarator
        quals: list[str] = []
        n = 0
        while n < 256:
            n += 1
            k = ty.kind
            if k in _QUALIFIERS:
                under = self._skip_quals(ty)
                if under is not None and under.kind == "ptr":
                    inner = _QUALIFIERS[k] + (" " + inner if inner else "")
                else:
                    quals.append(_QUALIFIERS[k])
                ty = self.get(ty.ref) or VOID
                continue
            if k == "type_tag":
                ty = self.get(ty.ref) or VOID
                continue
            if k == "ptr":
                inner = "*" + inner
                ty = self.get(ty.ref) or VOID
                continue
            if k == "array":
                if inner.startswith("*"):
                    inner = f"({inner})"
                inner = f"{inner}[{ty.nelems}]"
                ty = self.get(ty.ref) or VOID
                continue
            if k == "func_proto":
                if inner.startswith("*"):
                    inner = f"({inner})"
                params, variadic = self._params(ty)
                args = [self.type_str(p.type) for p in params]
                if variadic:
                    args.append("...")
                inner = f"{inner}({', '.join(args) if args else 'void'})"
                ty = self.get(ty.ref) or VOID
                continue
            break
        base = self.base_name(ty)
        if quals:
            base = " ".join(quals) + " " + base
        if not inner:
            return base
        if inner.startswith("["):
            return base + inner
        return base + " " + inner

    def _skip_quals(self, t: Type) -> Type | None:
        ty: Type | None = t
        while ty is not None and ty.kind in ("const", "volatile", "restrict", "type_tag"):
            ty = self.get(ty.ref)
        return ty
