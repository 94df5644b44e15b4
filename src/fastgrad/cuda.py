"""fastgrad.cuda as PyTorch's CPU build reports it: no CUDA device. Scripts written for either
(`device = "cuda" if torch.cuda.is_available() else "cpu"`, `torch.cuda.manual_seed_all(0)`)
run unchanged; asking for a CUDA device raises PyTorch's AssertionError."""
from fastgrad import _device


def is_available():
    return False


def device_count():
    return 0


def is_initialized():
    return False


def manual_seed(seed):
    """No CUDA generator to seed: a no-op, as in PyTorch without CUDA."""


def manual_seed_all(seed):
    """No CUDA generators to seed: a no-op, as in PyTorch without CUDA."""


def seed():
    pass


def seed_all():
    pass


def empty_cache():
    pass


def _no_cuda(*args, **kwargs):
    _device.check("cuda", "move")


current_device = get_device_name = get_device_properties = synchronize = set_device = _no_cuda
memory_allocated = max_memory_allocated = _no_cuda
