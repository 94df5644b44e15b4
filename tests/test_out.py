"""out= keywords (matmul, mm, bmm, cat, stack, add, mul): results written into the given tensor,
resized as PyTorch resizes it (silently when empty, with its warning otherwise), PyTorch's dtype
rules and its refusal when an argument requires grad."""
import numpy as np
import pytest

from _backend import fg

R = np.random.default_rng(11)


# --- out= -----------------------------------------------------------------------------------------

def _f32(*shape):
    return fg.tensor(R.standard_normal(shape).astype(np.float32))


@pytest.mark.parametrize("name, make, ref", [
    ("matmul", lambda a, b, o: fg.matmul(a, b, out=o), lambda a, b: a @ b),
    ("mm", lambda a, b, o: fg.mm(a, b, out=o), lambda a, b: a @ b),
    ("bmm", lambda a, b, o: fg.bmm(a[None], b[None], out=o), lambda a, b: (a @ b)[None]),
    ("cat", lambda a, b, o: fg.cat([a, b.t()], 0, out=o), lambda a, b: np.concatenate([a, b.T])),
    ("stack", lambda a, b, o: fg.stack([a, b.t()], 1, out=o), lambda a, b: np.stack([a, b.T], 1)),
    ("add", lambda a, b, o: fg.add(a, b.t(), alpha=2, out=o), lambda a, b: a + 2 * b.T),
    ("mul", lambda a, b, o: fg.mul(a, b.t(), out=o), lambda a, b: a * b.T),
])
def test_out_keyword(name, make, ref):
    a, b = _f32(2, 3), _f32(3, 2)
    expect = ref(a.numpy(), b.numpy())
    o = fg.empty(expect.shape)
    assert make(a, b, o) is o
    np.testing.assert_allclose(o.numpy(), expect, rtol=1e-6)
    o = fg.empty(0)                                   # empty: resized silently
    make(a, b, o)
    assert o.shape == expect.shape
    np.testing.assert_allclose(o.numpy(), expect, rtol=1e-6)
    o = fg.zeros(7)                                   # wrong shape: resized with torch's warning
    with pytest.warns(UserWarning, match=r"An output with one or more elements was resized since "
                                         r"it had shape \[7\], which does not match the required "
                                         r"output shape"):
        make(a, b, o)
    np.testing.assert_allclose(o.numpy(), expect, rtol=1e-6)
    ar = a.detach().requires_grad_()
    with pytest.raises(RuntimeError, match=rf"^{name}\(\): functions with out=\.\.\. arguments don't "
                                           r"support automatic differentiation, but one of the "
                                           r"arguments requires grad\.$"):
        make(ar, b, fg.empty(expect.shape))
    with fg.no_grad():
        o = fg.empty(expect.shape)
        make(ar, b, o)
        np.testing.assert_allclose(o.numpy(), expect, rtol=1e-6)
    assert not o.requires_grad


def test_out_dtype_rules():
    a, b = _f32(2, 3), _f32(3, 2)
    with pytest.raises(RuntimeError, match="^Expected out tensor to have dtype float, but got "
                                           "double instead$"):
        fg.mm(a, b, out=fg.empty(2, 2, dtype=fg.float64))
    with pytest.raises(RuntimeError, match="^result type Float can't be cast to the desired "
                                           "output type Long$"):
        fg.add(a, 1, out=fg.empty(2, 3, dtype=fg.int64))
    with pytest.raises(TypeError, match="^torch.cat\\(\\): input types can't be cast to the "
                                        "desired output type Long$"):
        fg.cat([a, a], out=fg.empty(0, dtype=fg.int64))
    o = fg.empty(2, 3, dtype=fg.float64)
    fg.add(a, 1, out=o)
    np.testing.assert_allclose(o.numpy(), a.numpy().astype(np.float64) + 1, rtol=1e-6)
    o = fg.empty(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match="functions with out="):
        fg.add(a, 1, out=o)
