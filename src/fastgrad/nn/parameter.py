"""Parameter: a leaf Tensor that a Module registers as trainable (requires_grad=True by default)."""
from fastgrad._core.tensor import TensorBase
from fastgrad._tensor import Tensor


class Parameter(Tensor):
    """A Tensor that is a module parameter. `Parameter(t)` shares t's storage and is always a
    leaf (even when t has a history), as in PyTorch."""
    __slots__ = ()

    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            from fastgrad._creation import empty
            data = empty(0)
        if not isinstance(data, TensorBase):
            raise TypeError(f"Parameter(): data must be a Tensor, got {type(data).__name__}")
        if data.is_inference():
            p = data.detach()                # stays an inference tensor, as in PyTorch
            p.__class__ = cls
        else:
            p = TensorBase.__new__(cls)
            p._set_data(data.detach()._np)
        if requires_grad:                    # raises for an inference tensor outside inference mode
            p.requires_grad_(True)
        return p

    def __init__(self, data=None, requires_grad=True):
        pass

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, proto):
        return (_rebuild_parameter, (self.detach().numpy().copy(), self.requires_grad))

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        p = _rebuild_parameter(self.detach().numpy().copy(), self.requires_grad)
        if self.grad is not None:
            p.grad = self.grad.clone()
        memo[id(self)] = p
        return p


def _rebuild_parameter(arr, requires_grad):
    from fastgrad._creation import from_numpy
    return Parameter(from_numpy(arr), requires_grad)
