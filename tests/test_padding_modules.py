"""The padding modules (ZeroPad, ConstantPad, ReflectionPad, ReplicationPad, CircularPad in 1-D,
2-D and 3-D): values and gradients against PyTorch and F.pad, reprs identical to PyTorch's."""
import numpy as np
import pytest

from _backend import fg, reference_torch
from _fd import check_grad

nn = fg.nn
torch = reference_torch()

# (class name, constructor args, input shape)
CASES = [
    ("ZeroPad1d", (2,), (2, 3, 5)), ("ZeroPad1d", ((1, 0),), (3, 4)),
    ("ZeroPad2d", (1,), (1, 2, 3, 4)), ("ZeroPad2d", ((1, 2, 0, 3),), (2, 3, 3)),
    ("ZeroPad3d", (1,), (1, 1, 2, 3, 2)),
    ("ConstantPad1d", (2, 3.5), (2, 3, 4)), ("ConstantPad2d", ((1, 0, 2, 1), -1.0), (1, 2, 3, 3)),
    ("ConstantPad3d", (1, 0.5), (1, 2, 2, 2)),
    ("ReflectionPad1d", (2,), (2, 3, 5)), ("ReflectionPad1d", ((3, 1),), (1, 2, 4)),
    ("ReflectionPad2d", (1,), (1, 2, 3, 4)), ("ReflectionPad2d", ((2, 0, 1, 2),), (2, 3, 4, 3)),
    ("ReflectionPad3d", (1,), (1, 1, 2, 3, 3)),
    ("ReplicationPad1d", (3,), (2, 3, 2)), ("ReplicationPad2d", ((1, 2, 3, 0),), (1, 2, 3, 2)),
    ("ReplicationPad3d", (1,), (1, 1, 2, 2, 2)),
    ("CircularPad1d", (2,), (2, 3, 4)), ("CircularPad2d", ((1, 2, 0, 1),), (1, 1, 3, 3)),
    ("CircularPad3d", (1,), (1, 1, 2, 2, 2)),
]
IDS = [f"{c}-{a}-{s}" for c, a, s in CASES]


@pytest.mark.parametrize("cls,args,shape", CASES, ids=IDS)
def test_padding_values_and_gradients_match_torch(cls, args, shape):
    if torch is None:
        pytest.skip("compares with PyTorch")
    x = np.random.default_rng(len(shape)).standard_normal(shape)
    out = []
    for lib in (fg, torch):
        t = lib.tensor(x, dtype=lib.float64, requires_grad=True)
        y = getattr(lib.nn, cls)(*args)(t)
        w = lib.tensor(np.arange(y.numel(), dtype=np.float64).reshape(tuple(y.shape)))
        (y * w).sum().backward()
        out.append((y.detach().numpy(), t.grad.numpy(), repr(getattr(lib.nn, cls)(*args))))
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=0, atol=0)
    np.testing.assert_allclose(out[0][1], out[1][1], rtol=1e-12)
    assert out[0][2] == out[1][2]


@pytest.mark.parametrize("cls,args,shape", CASES[::3], ids=IDS[::3])
def test_padding_finite_differences(cls, args, shape):
    x = np.random.default_rng(1).standard_normal(shape)
    check_grad(lambda t: getattr(nn, cls)(*args)(t), [x])


REPRS = [
    (lambda: nn.ZeroPad2d(1), "ZeroPad2d((1, 1, 1, 1))"),
    (lambda: nn.ZeroPad1d((1, 2)), "ZeroPad1d((1, 2))"),
    (lambda: nn.ConstantPad1d(2, 1.5), "ConstantPad1d(padding=(2, 2), value=1.5)"),
    (lambda: nn.ConstantPad2d((1, 2, 3, 4), 0), "ConstantPad2d(padding=(1, 2, 3, 4), value=0)"),
    (lambda: nn.ReflectionPad1d(2), "ReflectionPad1d((2, 2))"),
    (lambda: nn.ReflectionPad2d((1, 2, 3, 4)), "ReflectionPad2d((1, 2, 3, 4))"),
    (lambda: nn.ReplicationPad2d(2), "ReplicationPad2d((2, 2, 2, 2))"),
    (lambda: nn.ReplicationPad1d(1), "ReplicationPad1d((1, 1))"),
    (lambda: nn.CircularPad3d(1), "CircularPad3d((1, 1, 1, 1, 1, 1))"),
]


@pytest.mark.parametrize("make,text", REPRS, ids=[t for _, t in REPRS])
def test_padding_reprs(make, text):
    assert repr(make()) == text


def test_padding_attributes_and_errors():
    m = nn.ZeroPad2d(2)
    assert m.padding == (2, 2, 2, 2) and m.value == 0.0
    assert nn.ConstantPad3d(1, 2.0).padding == (1,) * 6
    with pytest.raises(RuntimeError, match="Padding size should be less than the corresponding "
                                           "input dimension"):
        nn.ReflectionPad1d(3)(fg.zeros(1, 2, 3))
    with pytest.raises(RuntimeError, match="Padding length should be less than or equal to two "
                                           "times the input dimension"):
        nn.ZeroPad2d(1)(fg.zeros(3))
