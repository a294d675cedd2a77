"""Replacing a file so that readers see the old version or the new one, never a part.

A symlink is written through, as editors do: its target is replaced and the link
stays. Only a regular file is replaced, keeping its mode, owner and group; a
write-protected one (no write bit, even for root) is refused. The new contents go
to a temporary beside the target, which its writer holds a lock on until it is
renamed into place: a temporary nobody holds was left by a killed writer and is
removed, one being written is not, so that writers of one file never stop each
other and the last to finish wins.
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import secrets
import stat
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO, Iterator

from .files import file_type, reason

MAX_LINKS = 40          # symlinks followed from a path before it counts as a loop (Linux's limit)
NAME_MAX = 255          # bytes in a file name, where the system does not say
TEMPORARY_EXTRA = 22    # bytes a temporary's name adds: "." + "." + 16 hex digits + ".tmp"
UNSEEN = (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG)  # no file, for a reason checked next


class Unwritable(OSError, ValueError):
    """A path that cannot be written as a file; the message names it and says why.
    A ValueError for option parsing, an OSError (a failed write) once running."""


def writable(path: str | os.PathLike) -> Path:
    """``path`` as a Path, after checking that it can be replaced: a regular file
    or nothing yet (through symlinks), not write-protected, with a name the system
    takes, in a writable folder that exists; Unwritable saying why not."""
    if not os.fspath(path):
        raise Unwritable("cannot write '': no file name given")
    _target(Path(path))
    return Path(path)


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s new contents into (``path`` as ``writable``
    checks it). When the block ends normally it is flushed and synced to disk,
    given the mode, owner and group of the file it replaces and renamed over it,
    and the folder is synced; on any failure (Ctrl-C too) it is removed and
    ``path`` is left as it was. A failure to write raises OSError naming ``path``."""
    destination = writable(path)
    target = _target(destination)
    stem = _stem(target)
    _remove_abandoned(target.parent, stem)
    temporary = _temporary(target, stem)
    try:
        while (file := _open_locked(temporary)) is None:  # a cleanup removed it first: again
            temporary = _temporary(target, stem)
        with file:
            _keep_owner_and_mode(file.fileno(), target)
            yield file
            file.flush()
            os.fsync(file.fileno())
            os.replace(temporary, target)  # still locked: no other writer's cleanup removes it
    except BaseException as exc:
        with suppress(OSError):
            temporary.unlink()
        if _about_temporary(exc, temporary):
            raise OSError(exc.errno, exc.strerror, os.fspath(destination)) from exc
        raise
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _target(path: Path) -> Path:
    """The file that writing ``path`` replaces: ``path`` with its symlinks followed,
    checked as ``writable`` says; Unwritable naming ``path`` otherwise."""
    def refuse(problem: str) -> Unwritable:
        return Unwritable(f"cannot write {_quoted(path)}: {problem}")
    try:
        target = _followed(path)
        try:
            mode = os.stat(target).st_mode
        except OSError as exc:
            if exc.errno not in UNSEEN:
                raise
            mode = None  # a new file, unless its folder or name is refused below
        if mode is not None and not stat.S_ISREG(mode):
            raise refuse(f"it is {file_type(mode)}" + ("" if stat.S_ISDIR(mode) else
                                                        ", not a regular file"))
        folder = target.parent
        try:
            folder_mode = os.stat(folder).st_mode
        except FileNotFoundError:
            raise refuse(f"directory {_quoted(folder)} does not exist") from None
        if not stat.S_ISDIR(folder_mode):
            raise refuse(f"{_quoted(folder)} is {file_type(folder_mode)}, not a directory")
        if mode is not None and not (mode & 0o222 and os.access(target, os.W_OK)):
            raise refuse(f"it is write-protected (mode {stat.S_IMODE(mode):o}); make it "
                         "writable to replace it")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise refuse(f"directory {_quoted(folder)} is not writable")
        most = _name_max(folder)
        if len(os.fsencode(target.name)) > most:
            raise refuse(f"its name is {len(os.fsencode(target.name))} bytes, more than the "
                         f"{most} a file name may have here")
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        if isinstance(exc, Unwritable):
            raise
        raise refuse(reason(exc) if isinstance(exc, OSError) else str(exc)) from None
    return target


def _quoted(path: str | os.PathLike) -> str:
    """``path`` in quotes, as a message names a file (its control characters escaped)."""
    return repr(os.fsdecode(path))


def _followed(path: Path) -> Path:
    """``path`` with the symlink it names, and the one that names, and so on, followed;
    OSError ELOOP after MAX_LINKS of them."""
    for _ in range(MAX_LINKS):
        try:
            link = os.readlink(path)
        except OSError as exc:
            if exc.errno == errno.EINVAL or exc.errno in UNSEEN:  # not a symlink; nothing there
                return path
            raise
        path = path.parent / link
    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), os.fspath(path))


def _name_max(folder: Path) -> int:
    """The most bytes a file name may have in ``folder``."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return NAME_MAX


def _stem(target: Path) -> str:
    """The part of ``target``'s name its temporaries' names hold: all of it, or as
    many of its first bytes as leave room for the rest of a temporary's name."""
    name = os.fsencode(target.name)
    room = _name_max(target.parent) - TEMPORARY_EXTRA
    return os.fsdecode(name[:room]) if len(name) > room else target.name


def _temporary(target: Path, stem: str) -> Path:
    return target.with_name(f".{stem}.{secrets.token_hex(8)}.tmp")


def _open_locked(temporary: Path) -> BinaryIO | None:
    """``temporary``, created and locked; None if a cleanup removed it before the lock."""
    file = open(temporary, "xb")
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX)
        if os.path.samestat(os.fstat(file.fileno()), os.stat(temporary, follow_symlinks=False)):
            return file
    except FileNotFoundError:
        pass
    except BaseException:
        file.close()
        raise
    file.close()
    return None


def _keep_owner_and_mode(fd: int, target: Path) -> None:
    """Give the open file ``fd`` the owner, group and mode of ``target``, if it exists
    (the owner and group as far as this process may give them)."""
    try:
        kept = os.stat(target)
    except FileNotFoundError:
        return
    with suppress(PermissionError):
        os.fchown(fd, kept.st_uid, kept.st_gid)
    os.fchmod(fd, stat.S_IMODE(kept.st_mode))


def _remove_abandoned(folder: Path, stem: str) -> None:
    """Remove the temporaries named with ``stem`` in ``folder`` (regular files named as
    ``replacing`` names them) that no writer holds: killed writers left them."""
    pattern = re.compile(rf"\.{re.escape(stem)}\.[0-9a-f]{{16}}\.tmp")
    with suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                with suppress(OSError):
                    _remove_if_abandoned(entry.path)


def _remove_if_abandoned(path: str) -> None:
    """Remove the temporary ``path`` unless its writer holds its lock (OSError then)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False)):
            os.unlink(path)
    finally:
        os.close(fd)


def _about_temporary(exc: BaseException, temporary: Path) -> bool:
    """Whether ``exc`` is a system error about ``temporary`` or about no file (a
    failed write or sync): one to report as an error about the file it replaces."""
    return isinstance(exc, OSError) and not isinstance(exc, Unwritable) and \
        exc.errno is not None and exc.filename in (None, os.fspath(temporary))
