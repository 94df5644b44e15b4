"""Tensors in shared memory: Tensor.share_memory_(), Tensor.is_shared() and the storages that
fastgrad.multiprocessing sends to other processes.

Note [Shared memory]
A tensor's storage is a NumPy array (`_data`). share_memory_() copies it into a SharedStorage (a
memory file, mapped MAP_SHARED) and points the tensor at an array over that mapping with the same
shape, dtype and axis order: the tensor keeps its identity, values, autograd state and .grad.
Every in-place write (optimizer steps, add_, copy_, indexing assignment) goes through `_data`,
so once a process forks, the writes of the child reach the parent and its siblings, which is
what Hogwild training relies on. A view moves with its base (over the moved base, at the same
offset and strides, when the base is dense). What shared the old array through another object
made before the move (the base's other views, arrays from .numpy(), detach() results) keeps the
old memory: call share_memory_() first, as one does before training with Hogwild in PyTorch.

The storage keeps the memory file's descriptor open so that fastgrad.multiprocessing can send it
to another process (multiprocessing.reduction.DupFd), which maps the same memory.
"""
import errno
import mmap
import os
import sys
import tempfile
import weakref

import numpy as np

from fastgrad._core.tensor import from_array

__all__ = ["SharedStorage", "share_memory_", "is_shared", "storage_of"]

# Python 3.13's mmap can map without keeping a duplicate of the descriptor (the storage keeps one)
_MAP_KEEPS_NO_FD = {"trackfd": False} if sys.version_info >= (3, 13) else {}


def _memory_file(nbytes):
    """A descriptor of a new memory file of `nbytes` bytes (at least 1: mmap maps no empty file),
    its pages reserved so that running out of memory raises here instead of a SIGBUS later."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("fastgrad-shared", os.MFD_CLOEXEC)
    else:
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
        fd, path = tempfile.mkstemp(prefix="fastgrad-shared-", dir=shm)
        os.unlink(path)
    try:
        os.ftruncate(fd, max(nbytes, 1))
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(fd, 0, max(nbytes, 1))
    except OSError as e:
        os.close(fd)
        raise RuntimeError(f"share_memory_(): could not allocate {nbytes} bytes of shared memory "
                           f"({e}); free memory or share a smaller tensor") from None
    return fd


class SharedStorage:
    """Bytes in shared memory: a memory file mapped MAP_SHARED. Arrays over it have it at the end
    of their `.base` chain (NumPy reads its __array_interface__), so it lives as long as they do;
    it closes its descriptor when it dies."""
    __slots__ = ("fd", "nbytes", "_map", "_addr", "_closer", "__weakref__")

    def __init__(self, nbytes, fd=None):
        """A new storage of `nbytes` bytes, or (fd given, owned from now on) one over the memory
        file another process shared."""
        try:
            self.fd = _memory_file(nbytes) if fd is None else fd
            self._closer = weakref.finalize(self, os.close, self.fd)
            self.nbytes = nbytes
            self._map = mmap.mmap(self.fd, max(nbytes, 1), **_MAP_KEEPS_NO_FD)  # MAP_SHARED, rw
        except OSError as e:
            if e.errno != errno.EMFILE:
                raise
            raise RuntimeError(
                f"shared memory: too many open files: each storage in shared memory holds "
                f"{2 - len(_MAP_KEEPS_NO_FD)} file descriptor(s) while it lives; raise the limit "
                f"(ulimit -n) or share fewer, larger tensors") from None
        self._addr = np.frombuffer(self._map, np.uint8).ctypes.data

    @property
    def __array_interface__(self):
        return {"shape": (self.nbytes,), "typestr": "|u1", "data": (self._addr, False),
                "version": 3}

    def array(self, shape, dtype, strides, offset=0):
        """An array of this storage's bytes from byte `offset` on."""
        return np.ndarray(shape, dtype, buffer=np.asarray(self), offset=offset, strides=strides)


def _address(arr):
    return arr.__array_interface__["data"][0]


def storage_of(arr):
    """(SharedStorage, byte offset of arr's first element) when arr lies in shared memory, else
    None."""
    b = arr
    while isinstance(b, (np.ndarray, memoryview)):
        b = b.obj if isinstance(b, memoryview) else b.base
    if isinstance(b, SharedStorage):
        return b, _address(arr) - b._addr
    return None


def is_shared(t):
    return storage_of(t._np) is not None


def _dense_strides(arr):
    """The strides of a dense array of arr's shape and dtype whose axes are laid out in arr's
    order (NumPy's order='K'): arr's own strides when arr is dense."""
    order = sorted(range(arr.ndim), key=lambda d: -abs(arr.strides[d]))
    strides, step = [0] * arr.ndim, arr.itemsize
    for d in reversed(order):
        strides[d] = step
        step *= arr.shape[d]
    return tuple(strides)


def _shared_copy(arr):
    strides = _dense_strides(arr)
    out = SharedStorage(arr.nbytes).array(arr.shape, arr.dtype, strides)
    np.copyto(out, arr)
    return out


def share_memory_(t):
    """Move t's values into shared memory (Note [Shared memory]); a no-op when they are there."""
    arr = t._np
    if storage_of(arr) is not None:
        return t
    base = t._base
    if base is not None and storage_of(base._np) is None:
        barr = base._np
        lo, hi = np.lib.array_utils.byte_bounds(arr)
        blo, bhi = np.lib.array_utils.byte_bounds(barr)
        if barr.strides == _dense_strides(barr) and blo <= lo and hi <= bhi:
            share_memory_(base)                      # same strides: offsets carry over
            storage, offset = storage_of(base._np)
            new = storage.array(arr.shape, arr.dtype, arr.strides,
                                offset + _address(arr) - _address(barr))
            t.data = from_array(new)
            return t
    # a tensor of its own (or a view that no longer shares its base's memory): moved alone
    t.data = from_array(_shared_copy(arr))
    return t
