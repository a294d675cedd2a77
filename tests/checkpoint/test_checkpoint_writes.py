"""Writing checkpoints (atomic.replacing): failures name the file, leave the previous
version whole and no temporary behind; temporaries of killed writers are cleaned up."""
import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpunet import atomic
from gpunet.atomic import replacing, writable

TEMPORARY = ".a.ckpt.0123456789abcdef.tmp"


def write(path, data=b"new"):
    with replacing(path) as file:
        file.write(data)


@pytest.fixture
def previous(tmp_path):
    path = tmp_path / "a.ckpt"
    path.write_bytes(b"previous")
    return path


def test_temporaries_of_killed_writers_are_removed_and_nothing_else(previous):
    folder = previous.parent
    kept = [".a.ckpt.0123456789ABCDEF.tmp", ".a.ckpt.0123456789abcde.tmp",
            ".a.ckpt.0123456789abcdef0.tmp", ".a.ckpt.0123456789abcdef.tmp.keep",
            "a.ckpt.0123456789abcdef.tmp", ".b.ckpt.0123456789abcdef.tmp",
            ".xa.ckpt.0123456789abcdef.tmp", ".aXckpt.0123456789abcdef.tmp",
            ".a.ckpt.0123456789abcdefXtmp", ".a.ckpt.0123456789abcdef.tmpX"]
    for name in [TEMPORARY, ".a.ckpt.fedcba9876543210.tmp", *kept]:
        (folder / name).write_bytes(b"x")
    (folder / ".a.ckpt.1111111111111111.tmp").mkdir()
    (folder / ".a.ckpt.2222222222222222.tmp").symlink_to(folder / kept[0])
    write(previous)
    assert previous.read_bytes() == b"new"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["a.ckpt", ".a.ckpt.1111111111111111.tmp", ".a.ckpt.2222222222222222.tmp", *kept])


def test_a_writer_killed_mid_save_leaves_a_temporary_the_next_save_removes(previous):
    killed = subprocess.run([sys.executable, "-c", f"""
import os, signal
from gpunet.atomic import replacing
with replacing({str(previous)!r}) as file:
    file.write(b"half")
    file.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""], capture_output=True)
    assert killed.returncode == -9, killed.stderr
    assert len(list(previous.parent.glob(".a.ckpt.*.tmp"))) == 1
    assert previous.read_bytes() == b"previous"
    write(previous)
    assert [p.name for p in previous.parent.iterdir()] == ["a.ckpt"]


@pytest.mark.parametrize("name, message", [
    ("", "cannot write '': no file name given"),
    (".", "cannot write '.': it is a directory"),
    ("folder", "cannot write 'folder': it is a directory"),
    ("no/such/x.ckpt", "cannot write 'no/such/x.ckpt': directory 'no/such' does not exist"),
])
def test_paths_that_cannot_name_a_file_are_refused(tmp_path, monkeypatch, name, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    for check in (writable, write):
        with pytest.raises(ValueError) as error:
            check(name)
        assert str(error.value) == message
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]
    assert list((tmp_path / "folder").iterdir()) == []


def test_a_file_the_system_will_not_create_is_an_error_naming_it():
    with pytest.raises(FileNotFoundError) as error:
        write("/proc/x.ckpt")
    assert error.value.filename == "/proc/x.ckpt"
    assert error.value.errno == errno.ENOENT


def fail_with(code):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


@pytest.mark.parametrize("failing", ["fsync", "write"])
def test_a_full_disk_is_an_error_naming_the_file(previous, monkeypatch, failing):
    if failing == "fsync":
        monkeypatch.setattr(os, "fsync", fail_with(errno.ENOSPC))
        block = write
    else:
        def block(path):
            with replacing(path):
                fail_with(errno.ENOSPC)()
    with pytest.raises(OSError) as error:
        block(previous)
    assert (error.value.errno, error.value.filename) == (errno.ENOSPC, str(previous))
    assert str(error.value) == f"[Errno {errno.ENOSPC}] No space left on device: '{previous}'"
    assert previous.read_bytes() == b"previous"
    assert [p.name for p in previous.parent.iterdir()] == ["a.ckpt"]


def test_a_read_only_filesystem_is_an_error_naming_the_file(previous, monkeypatch):
    def read_only(path, mode):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
    monkeypatch.setattr(atomic, "open", read_only, raising=False)
    with pytest.raises(OSError) as error:
        write(previous)
    assert (error.value.errno, error.value.filename) == (errno.EROFS, str(previous))
    assert previous.read_bytes() == b"previous"
    assert [p.name for p in previous.parent.iterdir()] == ["a.ckpt"]


def test_the_first_error_wins_when_the_temporary_cannot_be_removed(previous, monkeypatch):
    monkeypatch.setattr(os, "fsync", fail_with(errno.EIO))
    monkeypatch.setattr(Path, "unlink", fail_with(errno.EROFS))
    with pytest.raises(OSError) as error:
        write(previous)
    assert (error.value.errno, error.value.filename) == (errno.EIO, str(previous))
    monkeypatch.undo()
    assert len(list(previous.parent.glob(".a.ckpt.*.tmp"))) == 1
    write(previous)
    assert [p.name for p in previous.parent.iterdir()] == ["a.ckpt"]


def test_errors_about_other_files_pass_unchanged(previous, tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        with replacing(previous) as file:
            file.write((tmp_path / "missing").read_bytes())
    assert error.value.filename == str(tmp_path / "missing")
    with pytest.raises(KeyboardInterrupt):
        with replacing(previous):
            raise KeyboardInterrupt
    assert previous.read_bytes() == b"previous"
    assert [p.name for p in previous.parent.iterdir()] == ["a.ckpt"]
