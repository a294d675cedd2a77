"""Download one file from a list of mirrors: MD5-checked, replaced atomically."""
from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from tqdm import tqdm

from ..atomic import replacing
from .errors import DatasetError

CHUNK_BYTES = 1 << 16
TIMEOUT_S = 30.0


def download_file(file_name: str, mirrors: Sequence[str], md5: str, directory: Path, *,
                  progress: bool = True, timeout: float = TIMEOUT_S) -> Path:
    """``directory / file_name`` from the first mirror whose copy has MD5 ``md5``.

    Mirrors are base URLs tried in order. A failed or corrupt download leaves
    nothing behind; when every mirror fails, DatasetError names each mirror's
    host and why, once for the hosts that failed alike.
    """
    destination = Path(directory) / file_name
    hosts_by_reason: dict[str, list[str]] = {}
    for base in mirrors:
        url = base.rstrip("/") + "/" + file_name
        try:
            _fetch(url, md5, destination, progress, timeout)
            return destination
        except (OSError, http.client.HTTPException, DatasetError) as exc:
            hosts_by_reason.setdefault(_reason(exc), []).append(urlsplit(url).netloc)
    raise DatasetError(f"cannot download {file_name}: every mirror failed: " + "; ".join(
        f"{', '.join(hosts)} ({reason})" for reason, hosts in hosts_by_reason.items()))


def _reason(exc: Exception) -> str:
    """Why a download failed, in a few words: 'HTTP 404 Not Found', 'Name or service not known'."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(getattr(exc.reason, "strerror", None) or exc.reason)
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return str(exc) or type(exc).__name__


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
