"""read_idx: every type code round-trips, gzip-compressed or raw; bad files raise DatasetError."""
import os
import re
import struct

import numpy as np
import pytest

from gpunet.data import DatasetError, read_idx
from gpunet.data.idx import MAX_EXAMPLES, TYPE_CODES
from helpers.idx import deadline, gz, gzip_bomb, idx_bytes, peak_memory


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("code", TYPE_CODES, ids=hex)
def test_every_type_code_round_trips(tmp_path, code, compress):
    dtype = TYPE_CODES[code]
    array = (np.arange(24) - (0 if dtype.kind == "u" else 12)).reshape(2, 3, 4).astype(dtype)
    data = idx_bytes(array, code)
    path = tmp_path / "x.idx"
    path.write_bytes(gz(data) if compress else data)
    result = read_idx(path)
    assert result.dtype == dtype.newbyteorder("=") and result.dtype.isnative
    np.testing.assert_array_equal(result, array)


def test_images_and_labels_kinds(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    labels = np.arange(10, dtype=np.uint8)
    (tmp_path / "images.gz").write_bytes(gz(idx_bytes(images)))
    (tmp_path / "labels").write_bytes(idx_bytes(labels))
    np.testing.assert_array_equal(read_idx(tmp_path / "images.gz", kind="images"), images)
    np.testing.assert_array_equal(read_idx(tmp_path / "labels", kind="labels"), labels)


IMAGES = idx_bytes(np.zeros((2, 4, 4), np.uint8))
GZ_IMAGES = gz(IMAGES)
BAD_FILES = {  # name: (file bytes, kind, part of the message)
    "bad magic": (b"\x01\x00" + IMAGES[2:], None, "not an IDX file"),
    "wrong type code": (IMAGES[:2] + b"\x07" + IMAGES[3:], None, "unknown IDX type code 0x07"),
    "truncated payload": (IMAGES[:-1], None, "truncated: dimensions (2, 4, 4) of uint8 need 32"),
    "trailing bytes": (IMAGES + b"\x00", None, "has trailing bytes"),
    "too short for a header": (b"\x00\x00", None, "too short for an IDX header"),
    "no dimensions": (b"\x00\x00\x08\x00", None, "0 dimensions does not fit"),
    "dimensions cut off": (IMAGES[:10], None, "3 dimensions does not fit in 10 bytes"),
    "size beyond 64 bits": (bytes([0, 0, 8, 3]) + struct.pack(">3I", 2**22, 2**21, 2**21),
                            None, "too large: dimensions (4194304, 2097152, 2097152) of uint8 "
                                  "need 18446744073709551616 bytes of data, more than the "
                                  "47040000 of 60000 MNIST images"),
    "more labels than the format holds": (bytes([0, 0, 8, 1]) + struct.pack(">I", MAX_EXAMPLES + 1),
                                          "labels", "60001 bytes of data, more than the 60000 "
                                                    "of 60000 MNIST labels"),
    "images of another size": (idx_bytes(np.zeros((2, 28, 27), np.uint8)), "images",
                               "expected uint8 images (N, 28, 28), got uint8 (2, 28, 27)"),
    "label above 9": (idx_bytes(np.array([3, 10, 2], np.uint8)), "labels", "label 10 at index 1"),
    "labels given as images": (idx_bytes(np.arange(10, dtype=np.uint8)), "images",
                               "expected uint8 images (N, 28, 28), got uint8 (10,)"),
    "images given as labels": (IMAGES, "labels", "expected uint8 labels (N,), got uint8 (2, 4, 4)"),
    "int8 images": (idx_bytes(np.zeros((2, 4, 4), np.int8), 0x09), "images", "got int8"),
    "broken gzip stream": (GZ_IMAGES[:-12], None, "cannot read it"),
    "gzip with a bad CRC": (GZ_IMAGES[:-8] + bytes(8), None, "cannot read it"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_file_raises_dataset_error_naming_it(tmp_path, name):
    data, kind, message = BAD_FILES[name]
    path = tmp_path / "bad.idx"
    path.write_bytes(data)
    with pytest.raises(DatasetError, match=re.escape(message)) as info:
        read_idx(path, kind=kind)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="nope.gz: no such file"):
        read_idx(tmp_path / "nope.gz")


def test_directory_instead_of_a_file(tmp_path):
    with pytest.raises(DatasetError, match=f"^{re.escape(str(tmp_path))}: a directory, not a "
                                           "regular file$"):
        read_idx(tmp_path)


def test_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with deadline(5), pytest.raises(DatasetError, match="fifo: a FIFO, not a regular file$"):
        read_idx(tmp_path / "fifo", kind="images")


def test_gzip_bomb_is_read_only_as_far_as_its_header_says(tmp_path):
    path = gzip_bomb(tmp_path / "bomb.gz", idx_bytes(np.zeros((6, 28, 28), np.uint8)))
    assert path.stat().st_size < 2 << 20
    with pytest.raises(DatasetError, match="bomb.gz: has trailing bytes: dimensions .6, 28, 28."):
        read_idx(path, kind="images")
    assert peak_memory(read_idx, path, "images") < 4 << 20


def test_gzip_bomb_with_a_header_too_large_is_not_decompressed(tmp_path):
    path = gzip_bomb(tmp_path / "bomb.gz", bytes([0, 0, 8, 1]) + struct.pack(">I", 1 << 30))
    with pytest.raises(DatasetError, match="bomb.gz: too large: dimensions .1073741824,. of "
                                           "uint8 need 1073741824 bytes"):
        read_idx(path, kind="labels")
    assert peak_memory(read_idx, path, "labels") < 4 << 20
