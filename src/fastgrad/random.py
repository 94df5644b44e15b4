"""Random generators with PyTorch's streams (Note [PyTorch's streams] in _core/random.pyx):
fastgrad.Generator, the default generator, and the torch.random functions (manual_seed, seed,
initial_seed, get_rng_state, set_rng_state, fork_rng)."""
import contextlib
import os

import numpy as np

from fastgrad._core.random import Engine
from fastgrad._core.tensor import from_array

_U64 = 1 << 64


def _seed_value(seed, who="manual_seed"):
    """PyTorch's seed rules: any int in [-2**63, 2**64), negative ones taken modulo 2**64."""
    if isinstance(seed, float) and who != "manual_seed":
        raise RuntimeError(f"{who} expected a long, but got float; pass an int seed")
    seed = int(seed)
    if not -(1 << 63) <= seed < _U64:
        raise ValueError(f"Overflow when unpacking long long: seed {seed} does not fit in 64 "
                         f"bits; use a seed in [-2**63, 2**64)")
    return seed % _U64


def _fresh_seed():
    return int.from_bytes(os.urandom(8), "little")


class Generator(Engine):
    """A CPU random number generator (mt19937, PyTorch's streams). Pass it as `generator=` to
    any sampling function; its state is independent of the default generator's."""

    def __init__(self, device="cpu"):
        from fastgrad import _dtypes
        self._device = _dtypes.device(device)

    @property
    def device(self):
        return getattr(self, "_device", None) or _cpu()

    def manual_seed(self, seed):
        """Seed this generator (an int in [-2**63, 2**64)); returns the generator."""
        self._manual_seed(_seed_value(seed, "Generator.manual_seed"))
        return self

    def seed(self):
        """Seed from the operating system's entropy; returns the seed used."""
        s = _fresh_seed()
        self._manual_seed(s)
        return s

    def initial_seed(self):
        return self._initial_seed()

    def get_state(self):
        """The full state as a uint8 tensor (PyTorch's layout: interchangeable with
        torch.Generator.get_state())."""
        return from_array(self._get_state())

    def set_state(self, new_state):
        """Restore a state returned by get_state(); returns the generator."""
        from fastgrad._core.tensor import TensorBase
        if not isinstance(new_state, TensorBase):
            raise TypeError(f"expected a torch.ByteTensor, but got {type(new_state).__name__}; "
                            f"pass the tensor returned by get_state()")
        arr = new_state.detach()._np
        if arr.dtype != np.uint8:
            raise TypeError(f"RNG state must be a torch.ByteTensor (uint8), got {new_state.dtype}")
        self._set_state(arr.reshape(-1))
        return self

    def __repr__(self):
        return f"<fastgrad.Generator object at {id(self):#x}>"

    def __reduce__(self):
        # pickle / copy.deepcopy: a generator that continues the same stream
        return _rebuild_generator, (self._get_state().tobytes(),)


def _rebuild_generator(state):
    g = Generator()
    g._set_state(np.frombuffer(state, dtype=np.uint8))
    return g


def _cpu():
    from fastgrad import _dtypes
    return _dtypes.device("cpu")


default_generator = Generator()
default_generator._manual_seed(_fresh_seed())


def _gen(generator):
    """The generator a sampling function draws from."""
    if generator is None:
        return default_generator
    if not isinstance(generator, Engine):
        raise TypeError(f"generator must be a fastgrad.Generator, not {type(generator).__name__}")
    return generator


def manual_seed(seed):
    """Seed the default generator; returns it."""
    default_generator._manual_seed(_seed_value(seed))
    return default_generator


def seed():
    """Seed the default generator from the operating system's entropy; returns the seed."""
    return default_generator.seed()


def initial_seed():
    """The seed the default generator was last seeded with."""
    return default_generator.initial_seed()


def get_rng_state():
    return default_generator.get_state()


def set_rng_state(new_state):
    default_generator.set_state(new_state)


@contextlib.contextmanager
def fork_rng(devices=None, enabled=True, _caller="fork_rng", _devices_kw="devices",
             device_type=None):
    """Draws inside the block do not change the default generator's stream outside it."""
    if not enabled:
        yield
        return
    state = default_generator._get_state()
    try:
        yield
    finally:
        default_generator._set_state(state)


__all__ = ["Generator", "default_generator", "manual_seed", "seed", "initial_seed",
           "get_rng_state", "set_rng_state", "fork_rng"]
