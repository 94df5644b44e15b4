"""How fastgrad.multiprocessing pickles tensors for other processes (its queues, pipes, and the
arguments of processes started with 'spawn' or 'forkserver').

A tensor in shared memory (share_memory_) travels as its storage's file descriptor
(multiprocessing.reduction.DupFd) with its dtype, shape, strides and offset: the receiver maps the
same memory, so each side sees the other's in-place writes. Two tensors over one storage arrive
over one storage (a cache by the memory file's identity). Any other tensor travels by value, as
pickle sends it: the receiver gets a copy and the sender's tensor stays where it is (PyTorch
moves it into shared memory on the way; call share_memory_() first to share it).

These reducers act where multiprocessing pickles with its ForkingPickler; pickle.dumps keeps
Tensor.__reduce_ex__ (a copy).
"""
import os
import weakref
from multiprocessing import reduction

import numpy as np

from fastgrad._core.tensor import from_array
from fastgrad._shared_memory import SharedStorage, storage_of
from fastgrad._tensor import Tensor
from fastgrad.nn.parameter import Parameter

try:
    # loaded now so that a process forked while a queue's feeder thread pickles never inherits
    # it half-imported (DupFd imports it when it sends a descriptor)
    import multiprocessing.resource_sharer  # noqa: F401
except ImportError:
    pass

__all__ = ["init_reductions", "reduce_tensor", "rebuild_shared_tensor"]

# (inode, device) of a memory file -> the storage mapping it in this process
_storages = weakref.WeakValueDictionary()


def _file_id(fd):
    st = os.fstat(fd)
    return st.st_ino, st.st_dev


def reduce_tensor(t):
    if t.requires_grad and not t.is_leaf:
        raise RuntimeError(
            "Cowardly refusing to serialize non-leaf tensor which requires_grad, since autograd "
            "does not support crossing process boundaries; to send only its values, call "
            "detach() on the tensor before putting it on the queue")
    found = storage_of(t._np)
    if found is None:
        return t.__reduce_ex__(4)
    storage, offset = found
    _storages.setdefault(_file_id(storage.fd), storage)
    arr = t._np
    return (rebuild_shared_tensor,
            (type(t), reduction.DupFd(storage.fd), storage.nbytes, arr.dtype, arr.shape,
             arr.strides, offset, t.requires_grad))


def rebuild_shared_tensor(cls, dup_fd, nbytes, dtype, shape, strides, offset, requires_grad):
    """A tensor over the shared storage another process sent (reduce_tensor)."""
    fd = dup_fd.detach()
    key = _file_id(fd)
    storage = _storages.get(key)
    if storage is None:
        storage = SharedStorage(nbytes, fd)
        _storages[key] = storage
    else:
        os.close(fd)
    t = from_array(storage.array(shape, np.dtype(dtype), strides, offset))
    if cls is Parameter:
        return Parameter(t, requires_grad)
    return t.requires_grad_(requires_grad)


def init_reductions():
    """Make multiprocessing's ForkingPickler send tensors with reduce_tensor (done on import)."""
    for cls in (Tensor, Parameter):
        reduction.ForkingPickler.register(cls, reduce_tensor)
