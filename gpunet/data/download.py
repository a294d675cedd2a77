"""Download one file from a list of mirrors: MD5-checked, replaced atomically."""
from __future__ import annotations

import hashlib
import http.client
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from ..atomic import replacing
from .errors import DatasetError

CHUNK_BYTES = 1 << 16
TIMEOUT_S = 30.0


def download_file(file_name: str, mirrors: Sequence[str], md5: str, directory: Path, *,
                  progress: bool = True, timeout: float = TIMEOUT_S) -> Path:
    """``directory / file_name`` from the first mirror whose copy has MD5 ``md5``.

    Mirrors are base URLs tried in order. A failed or corrupt download leaves
    nothing behind; when every mirror fails, DatasetError lists each one and why.
    """
    destination = Path(directory) / file_name
    failures = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + file_name
        try:
            _fetch(url, md5, destination, progress, timeout)
            return destination
        except (OSError, http.client.HTTPException, DatasetError) as exc:
            failures.append(f"{url} ({exc})")
    raise DatasetError(f"cannot download {file_name}: every mirror failed: " + "; ".join(failures))


def _fetch(url: str, md5: str, destination: Path, progress: bool, timeout: float) -> None:
    with replacing(destination) as part, urllib.request.urlopen(url, timeout=timeout) as response:
        size = response.headers.get("Content-Length", "")
        digest = _copy(response, part, int(size) if size.isdigit() else None,
                       desc=destination.name, progress=progress)
        if digest != md5:
            raise DatasetError(f"MD5 {digest}, expected {md5}")


def _copy(source, target, total: int | None, desc: str, progress: bool) -> str:
    """Copy the stream ``source`` into ``target``; the MD5 of the bytes copied."""
    digest = hashlib.md5()
    with tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
              disable=not progress) as bar:
        while chunk := source.read(CHUNK_BYTES):
            target.write(chunk)
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()
