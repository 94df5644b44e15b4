"""The hook handle: what every `register_*hook` returns (PyTorch's
`torch.utils.hooks.RemovableHandle`), for tensors, graph nodes, modules and optimizers alike.

Hooks live in an OrderedDict keyed by their handle's id, so they run in the order they were
registered, one function may be registered twice and each registration removed on its own. A
handle holds its dicts by weak reference: it does not keep a dead tensor's hooks alive, and
`remove()` after the owner is gone does nothing. Nothing here knows tensors or nodes, so any
module of the core can use it.
"""
import weakref
from collections import OrderedDict


class RemovableHandle:
    """Returned by register_hook and its kin: `remove()` unregisters the hook (again: no-op);
    as a context manager it removes the hook when the block ends. `id` is unique in the process."""

    id: int
    next_id: int = 0

    def __init__(self, hooks_dict, *, extra_dict=None):
        self.id = RemovableHandle.next_id
        RemovableHandle.next_id += 1
        if extra_dict is None:
            extra = ()
        elif isinstance(extra_dict, dict):
            extra = (extra_dict,)
        else:
            extra = tuple(extra_dict)
        # (dict, key) pairs this handle removes; one key, its id, as in PyTorch, except for a
        # handle that joins others (joined()), which removes each under its own key
        self._entries = tuple((weakref.ref(d), self.id) for d in (hooks_dict,) + extra)

    def remove(self):
        for ref, key in self._entries:
            hooks = ref()
            if hooks is not None:
                hooks.pop(key, None)

    def __getstate__(self):
        return (tuple((ref(), key) for ref, key in self._entries), self.id)

    def __setstate__(self, state):
        entries, self.id = state
        # an entry whose dict was gone when pickled stays dead: it points at the empty _DEAD
        self._entries = tuple((weakref.ref(d if d is not None else _DEAD), key)
                              for d, key in entries)
        RemovableHandle.next_id = max(RemovableHandle.next_id, self.id + 1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


_DEAD = OrderedDict()


def add_hook(hooks, fn):
    """Register fn in `hooks` (an OrderedDict) under a new handle's id; returns the handle."""
    handle = RemovableHandle(hooks)
    hooks[handle.id] = fn
    return handle


def hook_dict():
    """A new, empty hook container (ordered, and weakly referable by its handles)."""
    return OrderedDict()


def joined(handles):
    """One handle whose remove() removes the hooks of all `handles` (a hook registered on
    several tensors at once: autograd.graph.register_multi_grad_hook)."""
    handle = RemovableHandle(_DEAD)
    handle._entries = tuple(entry for h in handles for entry in h._entries)
    return handle
