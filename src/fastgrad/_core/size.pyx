"""Size: the type of a tensor's shape (Tensor.shape, Tensor.size()), as torch.Size."""


class Size(tuple):
    """A tensor's shape: a tuple that prints as torch.Size([2, 3])."""
    __slots__ = ()

    def __repr__(self):
        return f"torch.Size({list(self)})"

    def numel(self):
        n = 1
        for d in self:
            n *= d
        return n
