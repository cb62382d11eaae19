"""The one atomic file writer: ``network2.save``, the CLI's ``--save``/``--plot`` and anyone
else who writes a file goes through :func:`atomic_open`.

What a reader of the target sees is the old file or the new one, never a part.  Beyond
that, a save behaves like ``open(path, "w")``:

* a new file gets mode ``0o666 & ~umask`` (the kernel applies the umask and any default
  ACL); an existing regular file keeps its mode (and, where permitted, its owner/group);
* a symbolic link is followed: the file it points to is replaced, the link is kept
  (``open`` writes through the link the same way);
* a target that exists but is not a regular file (directory, FIFO, device, socket) is
  refused with :class:`NotRegularFileError` instead of being replaced; an existing file
  you may not write is refused with ``PermissionError``.

Unlike ``open``, the file is replaced by a new inode (``rename``), so other hard links to
the old file keep the old contents.

The data go to a temporary file beside the target with a fixed name,
``.NAME.fastbp-tmp``, which is then renamed over the target.  A save killed part-way
leaves at most that one file, and the next save of the same target removes it.  Saves
into one directory take turns (``flock`` on the directory, released by the kernel if the
process dies), so one save never removes another's live temporary file.  A save that
cannot take its turn writes to a temporary file of its own,
``.NAME.<random>.fastbp-tmp``, instead: where the directory cannot be locked (no
``fcntl``, or a file system without ``flock``), and a save that starts on a thread
already saving into that directory (a signal handler's, which would otherwise wait for
itself forever).  Each save is still atomic; a killed one of these leaves its own file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import tempfile
import threading
from collections.abc import Iterator
from typing import IO, Any

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None  # type: ignore[assignment]

TMP_SUFFIX = ".fastbp-tmp"

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link that does not resolve"))


class NotRegularFileError(OSError, ValueError):
    """The target of a save exists but is not a regular file (a directory, FIFO, device,
    socket or a symbolic-link loop).  An ``OSError`` and a ``ValueError``."""


def fspath(path: Any, what: str = "filename") -> str:
    """``path`` (str, bytes or os.PathLike) as a str; TypeError naming ``what`` otherwise."""
    if isinstance(path, (str, bytes, os.PathLike)):
        name = os.fsdecode(os.fspath(path))
        if name and "\0" not in name:
            return name
        raise ValueError(f"{what} must be a non-empty path without NUL characters, "
                         f"got {path!r}")
    raise TypeError(f"{what} must be a path (str or os.PathLike), got {type(path).__name__}")


def resolve_target(path: Any, what: str = "filename", probe: bool = True) -> str:
    """Check that ``path`` can be saved to and return the file that would be written
    (symbolic links followed).

    Raises TypeError/ValueError for a bad argument, :class:`NotRegularFileError` for an
    existing non-regular target, ``FileNotFoundError``/``NotADirectoryError`` if the
    directory is missing, ``PermissionError`` if the file or directory is not writable.
    ``probe`` also creates and removes a file in the directory: the honest test of
    writability (``os.access`` cannot see read-only mounts, or what root may not do).
    """
    name = fspath(path, what)
    target = os.path.realpath(name)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise NotADirectoryError(errno.ENOTDIR, f"{what} {name!r}: a component of the "
                                 "path is not a directory", name) from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = next((k for test, k in _KINDS if test(st.st_mode)), "not a regular file")
        raise NotRegularFileError(errno.EINVAL, f"{what} {name!r} is {kind}; only regular "
                                  "files are written", name)
    if st is not None and not os.access(target, os.W_OK):
        raise PermissionError(errno.EACCES, f"{what} {name!r} is not writable", name)
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        kind = "is not a directory" if os.path.exists(directory) else "does not exist"
        error = NotADirectoryError if os.path.exists(directory) else FileNotFoundError
        raise error(errno.ENOTDIR if error is NotADirectoryError else errno.ENOENT,
                    f"{what} {name!r}: the directory {directory!r} {kind}", name)
    if probe:
        try:
            fd, created = tempfile.mkstemp(prefix=".fastbp-probe-", dir=directory)
        except OSError as exc:
            raise _cannot_create(exc, what, name, directory) from None
        os.close(fd)
        os.unlink(created)
    return target


def _cannot_create(exc: OSError, what: str, name: str, directory: str) -> OSError:
    """The same kind of OSError (PermissionError, ...), naming the argument, not the
    temporary file."""
    return OSError(exc.errno or errno.EACCES, f"{what} {name!r}: cannot create files in "
                   f"{directory!r} ({exc.strerror})", name)


@contextlib.contextmanager
def atomic_open(path: Any, mode: str = "w", *, encoding: str | None = "utf-8",
                what: str = "filename") -> Iterator[IO[Any]]:
    """Open a temporary file for writing; when the ``with`` block ends without an error,
    flush it to disk and rename it over ``path`` (see the module docstring).  On any
    exception (KeyboardInterrupt included) ``path`` is left as it was and the temporary
    file is removed.  ``mode`` is "w" (text, ``encoding``) or "wb".
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    name = fspath(path, what)
    target = resolve_target(name, what, probe=False)
    directory, base = os.path.split(target)
    with _directory_lock(directory) as turn:
        tmp = os.path.join(directory, f".{base}{TMP_SUFFIX}")
        if not (turn and _remove_stale(tmp)):  # (no turn taken, or something that is no
            # killed save's file at the fixed name: a name no other save uses)
            tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}{TMP_SUFFIX}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) \
            | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(tmp, flags, 0o666)  # the kernel applies the umask, as open() does
        except OSError as exc:
            raise _cannot_create(exc, what, name, directory) from None
        try:
            try:
                _keep_metadata(fd, target)
                # (closefd=False: the descriptor is closed below, exactly once, even if a
                # Ctrl-C lands between the file object's making and its use)
                with open(fd, mode, encoding=encoding if mode == "w" else None,
                          closefd=False) as f:
                    yield f
                    f.flush()
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_directory(directory)


def _keep_metadata(fd: int, target: str) -> None:
    """Give the new file the mode (and, where permitted, owner) of an existing target."""
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return
    os.fchmod(fd, stat.S_IMODE(st.st_mode))
    if hasattr(os, "fchown"):
        mine = os.fstat(fd)
        if (mine.st_uid, mine.st_gid) != (st.st_uid, st.st_gid):
            with contextlib.suppress(PermissionError):  # as open(): a non-root user's
                os.fchown(fd, st.st_uid, st.st_gid)     # new file is simply theirs
                os.fchmod(fd, stat.S_IMODE(st.st_mode))  # chown may clear setgid bits


def _remove_stale(tmp: str) -> bool:
    """Remove what a killed save left (only ever our fixed name; we hold the lock); False
    if something else is there that cannot be removed (a directory, say)."""
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


_HELD = threading.local()  # .dirs: the directories (st_dev, st_ino) this thread holds


@contextlib.contextmanager
def _directory_lock(directory: str) -> Iterator[bool]:
    """An exclusive ``flock`` on ``directory`` while one save runs in it; yields whether
    the save has its turn (False: no lock could be taken, or this thread already holds
    it, say a signal handler saving while the code it interrupted saves)."""
    fd = -1
    held: set = _HELD.__dict__.setdefault("dirs", set())
    mine = None  # the directory this save marked as held by its thread
    locked = False
    if fcntl is not None:
        try:
            fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino)
            if key not in held:
                # marked before the flock and unmarked after the close: a save nested at
                # any moment in between (a signal handler's) never waits for this one
                held.add(key)
                mine = key
                fcntl.flock(fd, fcntl.LOCK_EX)
                locked = True
        except BaseException as exc:
            if not isinstance(exc, OSError):  # e.g. Ctrl-C while waiting for the lock
                if fd >= 0:
                    os.close(fd)
                if mine is not None:
                    held.discard(mine)
                raise
            # an unreadable directory, or no flock on this file system: no turns
    try:
        yield locked
    finally:
        if fd >= 0:
            os.close(fd)  # releases the lock
        if mine is not None:
            held.discard(mine)


def _fsync_directory(directory: str) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
