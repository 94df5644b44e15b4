"""F.rms_norm and nn.RMSNorm: values and gradients against PyTorch and finite differences, the
dtype's epsilon as default eps, the module's parameter, repr and shape errors."""
import numpy as np
import pytest

from _backend import fg, reference_torch
from _fd import check_grad

F = fg.nn.functional
nn = fg.nn
torch = reference_torch()


@pytest.mark.skipif(torch is None, reason="compares with PyTorch")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape,norm,eps", [((2, 3), (3,), None), ((2, 3, 4), (3, 4), 1e-5),
                                            ((5,), (5,), 0.1), ((2, 0, 3), (3,), None)])
def test_rms_norm_matches_torch(dtype, shape, norm, eps):
    x = np.random.default_rng(0).standard_normal(shape)
    w = np.linspace(0.5, 1.5, int(np.prod(norm))).reshape(norm)
    x.flat[:1] = 0.0
    out = []
    for lib in (fg, torch):
        xt = lib.tensor(x, dtype=getattr(lib, dtype), requires_grad=True)
        wt = lib.tensor(w, dtype=getattr(lib, dtype), requires_grad=True)
        y = lib.nn.functional.rms_norm(xt, norm, wt, eps)
        y.backward(lib.ones_like(y) * 0.3 + y.detach())
        out.append((y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()))
    rtol = 1e-5 if dtype == "float32" else 1e-12
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)


def test_rms_norm_finite_differences():
    rng = np.random.default_rng(1)
    check_grad(lambda x, w: F.rms_norm(x, (2, 3), w, 1e-3), [rng.standard_normal((4, 2, 3)),
                                                            rng.standard_normal((2, 3))])
    check_grad(lambda x: F.rms_norm(x, [3]), [rng.standard_normal((2, 3))])
    with pytest.raises(TypeError, match="must be tuple of ints, not int"):
        F.rms_norm(fg.zeros(2, 3), 3)


def test_rms_norm_zero_rows_use_the_dtype_epsilon():
    np.testing.assert_array_equal(F.rms_norm(fg.zeros(2, 3), (3,)).numpy(), np.zeros((2, 3)))
    x = fg.full((1, 4), 1e-5, dtype=fg.float32)
    expected = 1e-5 / np.sqrt(1e-10 + np.finfo(np.float32).eps)
    np.testing.assert_allclose(F.rms_norm(x, (4,)).numpy(), np.full((1, 4), expected), rtol=1e-5)


def test_rms_norm_module():
    m = nn.RMSNorm(4)
    assert repr(m) == "RMSNorm((4,), eps=None, elementwise_affine=True)"
    assert list(m.state_dict()) == ["weight"] and m.weight.detach().numpy().tolist() == [1.0] * 4
    m2 = nn.RMSNorm([2, 3], eps=1e-5, elementwise_affine=False)
    assert repr(m2) == "RMSNorm((2, 3), eps=1e-05, elementwise_affine=False)"
    assert m2.weight is None and list(m2.state_dict()) == []
    x = fg.tensor(np.arange(8.0).reshape(2, 4), requires_grad=True)
    m(x).sum().backward()
    assert tuple(m.weight.grad.shape) == (4,)
    with pytest.raises(RuntimeError, match=r"but got input of size\[2, 3\]"):
        F.rms_norm(fg.zeros(2, 3), (4,))
