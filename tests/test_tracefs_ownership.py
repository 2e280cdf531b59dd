"""tracefs's owner rules (tracefs/ownership.py), without a mount: set_tracefs_inode_owner,
tracefs_setattr and tracefs_apply_options at remount."""

from __future__ import annotations

from tracefs_sim.tracefs.ownership import Ownership


def test_an_inode_takes_the_mount_owner_until_chowned():
    o = Ownership(0, 0)
    assert o.owner_of("") == (0, 0) and o.owner_of("/trace") == (0, 0)
    o.chown("/trace", 1000, None)
    assert o.owner_of("/trace") == (1000, 0)
    o.chown("/trace", None, 50)                       # chgrp keeps the uid
    assert o.owner_of("/trace") == (1000, 50)
    assert o.owner_of("/tracing_on") == (0, 0)


def test_files_of_an_instance_take_the_instance_directorys_owner():
    o = Ownership(0, 0)
    o.chown("/instances/foo", 1000, None)
    assert o.owner_of("/instances/foo") == (1000, 0)
    assert o.owner_of("/instances/foo/events/sched/enable") == (1000, 0)
    o.chown("/instances/foo/trace", None, 7)          # its own gid, the instance's uid
    assert o.owner_of("/instances/foo/trace") == (1000, 7)
    assert o.owner_of("/instances/bar/trace") == (0, 0)
    o.chown("/events", 5, 5)                          # only an instance root is inherited
    assert o.owner_of("/events/sched") == (0, 0)


def test_mkdir_and_rmdir_of_an_instance():
    o = Ownership(0, 0)
    o.chown("/instances", 3, 4)
    o.chown("/instances/foo", 1000, 1000)
    o.chown("/instances/foo/trace", 9, 9)
    o.rmdir("/instances/foo")
    assert o.owner_of("/instances/foo/trace") == (0, 0)
    o.mkdir("/instances", "/instances/foo")           # a new instance: its parent's owner
    assert o.owner_of("/instances/foo") == (3, 4)
    assert o.owner_of("/instances/foo/trace") == (3, 4)
    o.chown("/instances/foobar", 8, 8)
    o.rmdir("/instances/foo")                         # a name sharing the prefix stays
    assert o.owner_of("/instances/foobar") == (8, 8)


def test_remount_sets_the_owner_and_resets_that_half_of_every_chown():
    o = Ownership(0, 0)
    o.chown("/trace", 1000, 1000)
    o.chown("/instances/foo", 1001, 1001)
    o.remount("rw,gid=42,nodev")
    assert o.owner_of("/trace") == (1000, 42)
    assert o.owner_of("/instances/foo/trace") == (1001, 42)
    assert o.owner_of("/README") == (0, 42)
    o.remount("uid=7,gid=x,mode=700")                 # a malformed gid changes nothing
    assert o.owner_of("/trace") == (7, 42) and o.owner_of("/instances/foo") == (7, 42)
    o.chown("/trace", 1, None)
    assert o.owner_of("/trace") == (1, 42)
