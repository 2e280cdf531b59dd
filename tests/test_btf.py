"""BTF parsing of the captured vmlinux blob."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tracefs_sim.kernel.btf import BTF

REF = Path(__file__).resolve().parents[2] / "shared" / "reference" / "linux-6.12"
needs_ref = pytest.mark.skipif(not REF.is_dir(), reason="../shared not present")


@pytest.fixture(scope="module")
def btf() -> BTF:
    return BTF()


def test_vfs_read_proto(btf: BTF) -> None:
    p = btf.func_proto("vfs_read")
    assert p is not None and not p.variadic
    assert btf.type_str(p.ret) == "ssize_t"
    assert btf.is_signed(p.ret)
    assert [(q.name, btf.type_str(q.type)) for q in p.params] == [
        ("file", "struct file *"), ("buf", "char *"), ("count", "size_t"), ("pos", "loff_t *")]
    assert not btf.is_signed(p.params[2].type)
    assert btf.func_proto("no_such_function") is None


def test_variadic(btf: BTF) -> None:
    p = btf.func_proto("mmiotrace_printk")
    assert p is not None and p.variadic
    assert [btf.type_str(q.type) for q in p.params] == ["const char *"]


def test_file_f_path_dentry_d_name_name(btf: BTF) -> None:
    p = btf.func_proto("vfs_read")
    assert p is not None
    file = btf.pointee(p.params[0].type)
    assert file is not None and (file.kind, file.name) == ("struct", "file")
    names = [m.name for m in btf.members(file)]
    assert names[:11] == ["f_count", "f_lock", "f_mode", "f_op", "f_mapping", "private_data",
                          "f_inode", "f_flags", "f_iocb_flags", "f_cred", "f_path"]
    assert "" in names                     # the anonymous f_pos_lock/f_pipe union
    f_path = btf.find_struct_member(file, "f_path")
    assert f_path is not None and f_path[0].bit_offset == 64 * 8 and f_path[1] == 0
    # a member of an anonymous union is found, with the union's offset as anon offset
    m, anon, container = btf.find_struct_member(file, "f_pipe")
    assert (anon, m.bit_offset, container.kind) == (80 * 8, 0, "union")
    last, off = btf.member_path(file, "f_path.dentry")
    assert (last.kind, off) == ("ptr", 72)
    last, off = btf.member_path(file, "f_path.dentry->d_name.name")
    assert off == 40                       # d_name at 32 in dentry, name at 8 in qstr
    assert btf.type_str(last) == "const unsigned char *"
    qstr = btf.find_type("qstr")
    assert qstr is not None
    assert btf.find_member(qstr.id, "len") == (btf.find_struct_member(qstr, "len")[0].type.id,
                                               32, 0, 0, False)
    with pytest.raises(KeyError):
        btf.member_path(file, "f_path.nope")
    with pytest.raises(ValueError):
        btf.find_member(p.params[2].type.id, "x")


def test_resolve_and_kinds(btf: BTF) -> None:
    p = btf.func_proto("vfs_read")
    assert p is not None
    count = p.params[2].type
    assert count.kind == "typedef"
    base = btf.resolve(count)
    assert base is not None and base.kind == "int" and base.int_bits == 64 and not base.int_signed
    assert btf.sizeof(count) == 8
    assert btf.resolve_id(count.id) == base.id
    assert btf.skip_modifiers(count.id) == base


def test_bitfield_member(btf: BTF) -> None:
    sk = btf.find_type("sock")
    assert sk is not None
    m, anon, container = btf.find_struct_member(sk, "sk_kern_sock")
    assert container.kflag and anon == 0
    assert (m.bit_offset, m.bitfield_size) == (4561, 1)
    assert btf.find_member(sk.id, "sk_txtime_unused") == (m.type.id, 5234, 6, 0, True)
    assert btf.find_struct_member(sk, "sk_protocol")[0].bitfield_size == 0


@needs_ref
def test_prototypes_match_capture(btf: BTF) -> None:
    rows = (REF / "btf-function-prototypes.tsv").read_text().splitlines()
    rng = random.Random(612)
    checked = 0
    for line in rng.sample(rows, 400):
        f = line.split("\t")
        p = btf.func_proto(f[0])
        if p is None:                      # module functions: their BTF is not in vmlinux
            continue
        got = [f[0], btf.type_str(p.ret)]
        for q in p.params:
            got += [btf.type_str(q.type), q.name]
        if p.variadic:
            got += ["...", ""]
        assert got == f
        checked += 1
    assert checked >= 200


def test_module_function_proto(btf: BTF) -> None:
    """9p's BTF is not in vmlinux BTF; the prototype comes from the captured list."""
    p = btf.func_proto("v9fs_vfs_getattr")
    assert p is not None and btf.func_proto("v9fs_vfs_getattr") is p
    assert [(q.name, btf.type_str(q.type)) for q in p.params] == [
        ("idmap", "struct mnt_idmap *"), ("path", "const struct path *"),
        ("stat", "struct kstat *"), ("request_mask", "u32"), ("flags", "unsigned int")]
    path = btf.resolve(btf.pointee(p.params[1].type))
    assert path is not None and path.kind == "struct"
    last, off = btf.member_path(path, "dentry->d_name.name")
    assert off == 40 and last.kind == "ptr"
