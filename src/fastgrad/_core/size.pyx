"""Size: the type of a tensor's shape (Tensor.shape, Tensor.size()), as torch.Size."""


class Size(tuple):
    """A tensor's shape: a tuple that prints as torch.Size([2, 3])."""
    __slots__ = ()

    def __repr__(self):
        return f"torch.Size({list(self)})"

    # A slice of a Size, a Size joined with a tuple or repeated, is a Size, as in PyTorch
    # (x.size()[1:].numel() is common); an element is a plain int.
    def __getitem__(self, i):
        r = tuple.__getitem__(self, i)
        return Size(r) if type(i) is slice else r

    def __add__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        return Size(tuple.__add__(self, other))

    def __radd__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        return Size(tuple.__add__(other, self))

    def __mul__(self, n):
        return Size(tuple.__mul__(self, n))

    __rmul__ = __mul__

    def numel(self):
        n = 1
        for d in self:
            n *= d
        return n
