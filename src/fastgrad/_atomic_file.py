"""Replace a file atomically: write a temporary file next to it, fsync, then os.replace.

A reader (or a crash) sees either the complete old file or the complete new one, never a
half-written mix. A process killed mid-write leaves the target untouched and a hidden
``.<name>.<random>.tmp`` file beside it.
"""
import contextlib
import os
import stat


class _Stream:
    """Write-only view of a file that cannot seek or tell (a device, a FIFO), so writers such
    as zipfile track positions themselves instead of trusting the device's tell()."""

    def __init__(self, fh):
        self.write, self.flush = fh.write, fh.flush


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return                  # platforms without directory handles (Windows)
    try:
        os.fsync(fd)
    except OSError:
        pass                    # file systems that cannot sync a directory
    finally:
        os.close(fd)


def _create_temp(directory, base):
    for _ in range(100):
        tmp = os.path.join(directory, f".{base}.{os.urandom(6).hex()}.tmp")
        try:
            # mode 0o666 minus the umask, as open(path, "wb") would give a new file
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file next to {base!r} in {directory!r}")


@contextlib.contextmanager
def atomic_write(path):
    """Yield a binary file that replaces `path` when the block completes without an exception.

    On an exception the temporary file is removed and `path` keeps its previous content.
    Symlinks are followed (the link's target is replaced, the link stays); paths that exist
    but are not regular files (/dev/null, a FIFO) are written in place as a stream, as
    nothing can replace them atomically.
    """
    target = os.path.realpath(os.fspath(path))
    try:
        old = os.stat(target)
    except FileNotFoundError:
        old = None
    if old is not None and not stat.S_ISREG(old.st_mode):
        with open(target, "wb") as fh:
            yield _Stream(fh)
        return
    directory, base = os.path.split(target)
    tmp, fd = _create_temp(directory, base)
    try:
        if old is not None:
            os.chmod(tmp, stat.S_IMODE(old.st_mode))
        with os.fdopen(fd, "wb") as fh:
            fd = None
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        if fd is not None:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)
