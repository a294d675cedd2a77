"""gpunet/files.py: opening only regular files (and never keeping one refused open), and
showing paths on one line."""
import os

import pytest

from gpunet.files import Unreadable, escaped, open_regular, shown


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_a_refused_file_is_not_left_open(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    before = open_fds()
    for name in ("fifo", "dir", "/dev/zero"):
        for _ in range(3):
            with pytest.raises(Unreadable, match="not a regular file"):
                open_regular(tmp_path / name)
    assert open_fds() == before


def test_a_regular_file_opens_blocking(tmp_path):
    (tmp_path / "a").write_bytes(b"data")
    with open_regular(tmp_path / "a") as file:
        assert os.get_blocking(file.fileno()) and file.read() == b"data"


def test_a_symlink_loop_is_one_line_naming_it(tmp_path):
    (tmp_path / "loop").symlink_to("loop")
    with pytest.raises(Unreadable) as error:
        open_regular(tmp_path / "loop")
    assert str(error.value) == f"{tmp_path / 'loop'}: cannot read it (a symlink loop)"


def test_control_characters_and_undecodable_bytes_are_escaped():
    assert escaped("a\nb\tc\x1b[31md\x7f") == "a\\nb\\tc\\x1b[31md\\x7f"
    assert shown(b"caf\xc3\xa9/\xff\n") == "café/\\udcff\\n"
    assert shown("plain/path é.ckpt") == "plain/path é.ckpt"
    with pytest.raises(Unreadable) as error:
        open_regular("no\nsuch")
    assert str(error.value) == "no\\nsuch: no such file"
