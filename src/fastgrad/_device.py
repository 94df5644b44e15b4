"""fastgrad.device and the checks behind every `device=` argument, `.to(device)` and
`set_default_device`.

fastgrad computes on the CPU only and reports devices as PyTorch's CPU build does: a
`device('cuda')` can be named (scripts build one before asking `cuda.is_available()`), but
placing a tensor there raises PyTorch's error type with a message that says what to do."""
import builtins


# the device types PyTorch's parser knows; any other string is a RuntimeError, as in PyTorch
_KNOWN_TYPES = ("cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve",
                "fpga", "maia", "xla", "lazy", "vulkan", "mps", "meta", "hpu", "mtia",
                "privateuseone")
_ADVICE = ("fastgrad runs on the CPU only; use device 'cpu', or pick it the portable way: "
           "device = 'cuda' if torch.cuda.is_available() else 'cpu'")


class device:
    """A device name: device('cpu'), device('cpu:0'), device('cpu', 0), device(other_device)."""
    __slots__ = ("type", "index")

    def __init__(self, type, index=None):
        if isinstance(type, device):
            if index is not None:
                raise TypeError("device(): an index cannot be given with a device object")
            type, index = type.type, type.index
        elif isinstance(type, int) and not isinstance(type, bool):
            raise RuntimeError("Cannot access accelerator device when none is available. "
                               "(A bare device index means an accelerator; fastgrad has none: "
                               "use device('cpu').)")
        elif not isinstance(type, str):
            raise TypeError(f"device(): expected a string or a device, got "
                            f"{builtins.type(type).__name__}")
        else:
            name, sep, idx = type.partition(":")
            if name not in _KNOWN_TYPES:
                raise RuntimeError(f"Expected one of {', '.join(_KNOWN_TYPES)} device type at "
                                   f"start of device string: {type}")
            if sep:
                if index is not None or not idx.isdigit() or (len(idx) > 1 and idx[0] == "0"):
                    raise RuntimeError(f"Invalid device string: '{type}'")
                index = int(idx)
            type = name
        if index is not None:
            if not isinstance(index, int) or isinstance(index, bool):
                raise TypeError(f"device(): index must be an int, got "
                                f"{builtins.type(index).__name__}")
            if index < 0:
                raise RuntimeError("Device index must not be negative")
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "index", index)

    def __setattr__(self, name, value):
        raise AttributeError(f"attribute '{name}' of 'torch.device' objects is not writable")

    def __repr__(self):
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other):
        if not isinstance(other, device):
            return NotImplemented
        return self.type == other.type and self.index == other.index

    def __hash__(self):
        return hash((self.type, self.index))

    def __reduce__(self):
        return (device, (self.type, self.index))


cpu = device("cpu")


def check(where, action="create"):
    """Raise unless `where` (a device, 'cpu', 'cuda:0', ...) names the CPU. action 'create'
    (device= of a creation function) or 'move' (.to / .cuda / Module.to) picks PyTorch's error
    type for a device it has no support for."""
    if where is None or where == "cpu" or where is cpu:
        return
    d = where if isinstance(where, device) else device(where)
    if d.type == "cpu":
        return
    if d.type == "cuda":
        raise AssertionError(f"Torch not compiled with CUDA enabled: {_ADVICE}")
    if action == "create":
        raise NotImplementedError(f"Could not run on the '{d.type}' backend: {_ADVICE}")
    raise RuntimeError(f"fastgrad is not linked with support for {d.type} devices: {_ADVICE}")


def is_device_arg(a):
    """True for what .to() takes as its device argument: a device or a device string."""
    return isinstance(a, (device, str))


def set_default_device(where):
    """Only the CPU can be the default device; None resets it (to the CPU)."""
    check(where, "move")


def get_default_device():
    return cpu
