"""What a file written with atomic.replacing may be (--save, --metrics, show --out, bench
results): only a regular file, or nothing yet, is replaced, keeping its mode, owner and
group; a symlink is written through; devices, FIFOs, write-protected files, symlink
loops and names too long are refused in one line naming the path, before anything runs."""
import os
import stat
from pathlib import Path

import pytest

from gpunet.atomic import Unwritable, replacing, writable
from gpunet.cli import main

SMALL = ["--dataset", "fashion-mnist", "--train-subset", "200", "--test-subset", "50",
         "--epochs", "1", "--quiet", "--threads", "1"]


def write(path, data=b"new"):
    with replacing(path) as file:
        file.write(data)


def refused(path, message):
    for check in (writable, write):
        with pytest.raises(Unwritable) as error:
            check(path)
        assert str(error.value) == message


def special_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """A FIFO, a character device (a /dev/null of its own), a directory and a symlink loop."""
    os.mkfifo(folder / "fifo")
    os.mknod(folder / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    (folder / "dir").mkdir()
    (folder / "loop").symlink_to("loop")
    return {"fifo": "it is a FIFO, not a regular file",
            "null": "it is a character device, not a regular file",
            "dir": "it is a directory", "loop": "a symlink loop"}


def test_what_is_not_a_regular_file_is_refused_and_left_as_it_was(tmp_path):
    for name, problem in special_files(tmp_path).items():
        path = tmp_path / name
        before = os.lstat(path)
        refused(path, f"cannot write {str(path)!r}: {problem}")
        assert os.lstat(path).st_mode == before.st_mode and os.lstat(path).st_ino == before.st_ino
    refused(tmp_path / "loop" / "x.ckpt", f"cannot write {str(tmp_path / 'loop' / 'x.ckpt')!r}: "
                                          "a symlink loop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "fifo", "loop", "null"]


@pytest.mark.parametrize("device", ["/dev/null", "/dev/full"])
def test_the_system_devices_are_refused(device):
    refused(device, f"cannot write {device!r}: it is a character device, not a regular file")


def test_a_symlink_is_written_through_to_its_target(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "a.ckpt"
    target.write_bytes(b"old")
    link = tmp_path / "a.ckpt"
    link.symlink_to(Path("real") / "a.ckpt")
    (tmp_path / "chain").symlink_to("a.ckpt")
    write(tmp_path / "chain")
    assert link.is_symlink() and (tmp_path / "chain").is_symlink()
    assert target.read_bytes() == b"new"
    (tmp_path / "dangling").symlink_to(Path("real") / "b.ckpt")
    write(tmp_path / "dangling")
    assert (tmp_path / "dangling").is_symlink()
    assert (tmp_path / "real" / "b.ckpt").read_bytes() == b"new"
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["a.ckpt", "b.ckpt"]


def test_the_mode_owner_and_group_of_a_replaced_file_are_kept(tmp_path):
    private, shared = tmp_path / "private.ckpt", tmp_path / "shared.json"
    for path, mode in ((private, 0o600), (shared, 0o664)):
        path.write_bytes(b"old")
        path.chmod(mode)
    if os.geteuid() == 0:
        os.chown(shared, 1234, 5678)
    write(private)
    write(shared)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(shared.stat().st_mode) == 0o664
    if os.geteuid() == 0:
        assert (shared.stat().st_uid, shared.stat().st_gid) == (1234, 5678)
    assert private.read_bytes() == shared.read_bytes() == b"new"


def test_a_write_protected_file_is_refused_even_for_root(tmp_path):
    path = tmp_path / "kept.ckpt"
    path.write_bytes(b"old")
    path.chmod(0o444)
    refused(path, f"cannot write {str(path)!r}: it is write-protected (mode 444); "
                  "make it writable to replace it")
    assert path.read_bytes() == b"old"


def test_a_name_the_system_takes_is_written_however_long_and_a_longer_one_refused(tmp_path):
    longest = tmp_path / ("a" * os.pathconf(tmp_path, "PC_NAME_MAX"))
    write(longest)
    write(longest, b"again")  # its temporary's name is cut to fit, and cleaned up the same way
    assert longest.read_bytes() == b"again"
    assert [p.name for p in tmp_path.iterdir()] == [longest.name]
    too_long = tmp_path / ("b" * 300)
    refused(too_long, f"cannot write {str(too_long)!r}: its name is 300 bytes, more than the "
                      f"{os.pathconf(tmp_path, 'PC_NAME_MAX')} a file name may have here")
    deep = tmp_path.joinpath(*["c" * 200] * 30, "x")
    refused(deep, f"cannot write {str(deep)!r}: a name too long for the system")


def test_a_control_character_in_a_name_is_shown_escaped(tmp_path):
    path = tmp_path / "a\nb" / "x.ckpt"
    refused(path, f"cannot write '{tmp_path}/a\\nb/x.ckpt': directory '{tmp_path}/a\\nb' "
                  "does not exist")
    refused("a\0b", "cannot write 'a\\x00b': embedded null byte")


def test_a_folder_removed_mid_run_is_an_os_error_naming_the_file(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    writable(folder / "a.ckpt")
    folder.rmdir()
    with pytest.raises(OSError, match="directory .* does not exist"):
        write(folder / "a.ckpt")
    folder.write_text("now a file")
    with pytest.raises(OSError, match="is a file, not a directory"):
        write(folder / "a.ckpt")


def run_main(capsys, *argv):
    status = main(list(argv))
    return status, capsys.readouterr()


@pytest.mark.parametrize("option", ["--save", "--metrics"])
def test_train_refuses_special_outputs_before_training(tmp_path, capsys, fashion_dir, option):
    for name, problem in special_files(tmp_path).items():
        with pytest.raises(SystemExit) as exit:
            main(["train", *SMALL, "--data-dir", str(fashion_dir), option, str(tmp_path / name)])
        assert exit.value.code == 2
        err = capsys.readouterr().err.splitlines()[-1]
        assert err == (f"gpunet train: error: argument {option}: cannot write "
                       f"{str(tmp_path / name)!r}: {problem}")
    assert stat.S_ISCHR(os.lstat(tmp_path / "null").st_mode)


def test_show_refuses_special_pictures_and_metrics(tmp_path, capsys):
    special_files(tmp_path)
    with pytest.raises(SystemExit):
        main(["show", "--metrics", "m.json", "--out", str(tmp_path / "loop")])
    assert capsys.readouterr().err.splitlines()[-1].endswith(": a symlink loop")
    for metrics, problem in [("fifo", "a FIFO, not a regular file"),
                             ("loop", "cannot read it (a symlink loop)"),
                             ("/dev/zero", "a character device, not a regular file")]:
        path = metrics if metrics.startswith("/") else str(tmp_path / metrics)
        status, out = run_main(capsys, "show", "--metrics", path, "--out", str(tmp_path / "a.png"))
        assert status == 1
        assert out.err == f"gpunet: error: cannot read metrics file {path}: {problem}\n"


def test_train_stops_in_one_line_when_the_save_folder_goes_mid_run(tmp_path, capsys, fashion_dir,
                                                                   monkeypatch):
    import gpunet.cli.train as train
    folder = tmp_path / "run"
    folder.mkdir()
    saved = train.save_checkpoint

    def save_then_remove(path, *args, **kwargs):
        saved(path, *args, **kwargs)
        Path(path).unlink()
        folder.rmdir()

    monkeypatch.setattr(train, "save_checkpoint", save_then_remove)
    status, out = run_main(capsys, "train", *SMALL, "--epochs", "2", "--data-dir",
                           str(fashion_dir), "--save", str(folder / "a.ckpt"))
    assert status == 1
    assert out.err == (f"gpunet: error: cannot write {str(folder / 'a.ckpt')!r}: directory "
                       f"{str(folder)!r} does not exist; no checkpoint was written\n")
