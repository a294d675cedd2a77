"""Writers of one file at once (two `gpunet train --save same.ckpt`): each finishes, the
file is whole and one of theirs, and no temporary is left; only the temporaries of
writers that are gone are cleaned up."""
import os
import subprocess
import sys
import threading

from gpunet import atomic
from gpunet.atomic import replacing


def test_a_writer_does_not_remove_the_temporary_of_one_still_writing(tmp_path):
    target = tmp_path / "same.ckpt"
    writing, second_done = threading.Event(), threading.Event()
    failures = []

    def first():
        try:
            with replacing(target) as file:
                file.write(b"first")
                writing.set()
                assert second_done.wait(30)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failures.append(exc)
            writing.set()

    thread = threading.Thread(target=first)
    thread.start()
    assert writing.wait(30)
    with replacing(target) as file:  # its cleanup meets the first writer's temporary
        file.write(b"second")
    assert target.read_bytes() == b"second"
    second_done.set()
    thread.join(30)
    assert failures == []
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["same.ckpt"]


def test_a_temporary_removed_before_its_writer_locks_it_is_made_again(tmp_path, monkeypatch):
    target = tmp_path / "a.ckpt"
    flock, removed = atomic.fcntl.flock, []

    def cleanup_first(fd, operation):
        if not removed:  # another writer's cleanup, between the writer's open and its lock
            (name,) = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
            name.unlink()
            removed.append(name)
        return flock(fd, operation)

    monkeypatch.setattr(atomic.fcntl, "flock", cleanup_first)
    with replacing(target) as file:
        file.write(b"whole")
    assert removed and target.read_bytes() == b"whole"
    assert [p.name for p in tmp_path.iterdir()] == ["a.ckpt"]


def test_two_processes_saving_one_file_both_finish(tmp_path):
    """Each of two processes replaces the file many times while the other does."""
    script = """
import sys
from gpunet.atomic import replacing
for i in range(200):
    with replacing(sys.argv[1]) as file:
        file.write(sys.argv[2].encode() * 10000)
"""
    target = tmp_path / "same.ckpt"
    writers = [subprocess.Popen([sys.executable, "-c", script, str(target), mark],
                                stderr=subprocess.PIPE) for mark in "ab"]
    for writer in writers:
        assert writer.wait(120) == 0, writer.stderr.read().decode()
        writer.stderr.close()
    assert target.read_bytes() in (b"a" * 10000, b"b" * 10000)
    assert os.listdir(tmp_path) == ["same.ckpt"]
