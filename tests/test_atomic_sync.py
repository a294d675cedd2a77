"""atomic.replacing makes a new version durable: the file's bytes are flushed before it
is synced, and its folder is synced once the rename is made."""
import os
import stat

from gpunet.atomic import replacing


def test_the_file_is_flushed_before_its_sync_and_the_folder_synced_after_the_rename(
        tmp_path, monkeypatch):
    target = tmp_path / "a.ckpt"
    target.write_bytes(b"old")
    synced = []
    fsync = os.fsync

    def watched(fd):
        status = os.fstat(fd)
        synced.append((stat.S_ISDIR(status.st_mode), status.st_ino, status.st_size,
                       target.read_bytes()))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", watched)
    with replacing(target) as file:
        file.write(b"new contents")  # buffered until flushed
    assert [entry[:1] for entry in synced] == [(False,), (True,)]
    (_, _, size, then), (_, folder, _, after) = synced
    assert size == len(b"new contents") and then == b"old"
    assert folder == tmp_path.stat().st_ino and after == b"new contents"
