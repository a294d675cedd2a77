"""Checkpoints for the tests: a small one saved with a known config and history,
and its metadata rewritten in place as if edited by hand."""
import json
import struct

from gpunet.checkpoint import save_checkpoint


def save(path, model, optimizer, epoch=3):
    return save_checkpoint(path, model, optimizer, epoch=epoch, seed=7,
                           config={"model": "deep", "batch_size": 32},
                           history=[{"epoch": 1, "loss": 0.5}])


def rewrite_metadata(path, **changes):
    data = path.read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + size])
    header["__metadata__"].update(changes)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + size:])
