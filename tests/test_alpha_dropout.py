"""alpha_dropout / feature_alpha_dropout and their modules: the same numbers as PyTorch under the
same seed, selu's statistics kept, eval and p = 0 / 1, gradients."""
import numpy as np
import pytest

from _backend import fg, reference_torch

F = fg.nn.functional
nn = fg.nn
torch = reference_torch()


@pytest.mark.skipif(torch is None, reason="compares with PyTorch")
@pytest.mark.parametrize("fn,shape,p", [("alpha_dropout", (4, 5), 0.5),
                                        ("alpha_dropout", (3, 2, 2), 0.2),
                                        ("feature_alpha_dropout", (3, 4, 2), 0.3),
                                        ("feature_alpha_dropout", (2, 3), 0.7)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_numbers_as_torch_under_one_seed(fn, shape, p, dtype):
    x = np.random.default_rng(0).standard_normal(shape)
    out = []
    for lib in (fg, torch):
        lib.manual_seed(5)
        t = lib.tensor(x, dtype=getattr(lib, dtype), requires_grad=True)
        y = getattr(lib.nn.functional, fn)(t, p, True)
        y.backward(lib.ones_like(y))
        out.append((y.detach().numpy(), t.grad.numpy()))
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=1e-6)
    np.testing.assert_allclose(out[0][1], out[1][1], rtol=1e-6)


def test_keeps_selu_statistics():
    fg.manual_seed(0)
    x = F.selu(fg.randn(200000, dtype=fg.float64))
    y = F.alpha_dropout(x, 0.3, True).numpy()
    assert abs(y.mean()) < 0.02 and abs(y.std() - 1) < 0.02


def test_eval_p0_p1_and_errors():
    x = fg.ones(2, 3)
    assert F.alpha_dropout(x, 0.5, False) is x and F.alpha_dropout(x, 0.0, True) is x
    np.testing.assert_array_equal(F.alpha_dropout(x, 1.0, True).numpy(), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
        F.alpha_dropout(x, 1.5, True)
    m = nn.AlphaDropout(0.4)
    assert repr(m) == "AlphaDropout(p=0.4, inplace=False)"
    assert m.eval()(x) is x
    assert repr(nn.FeatureAlphaDropout(0.2)) == "FeatureAlphaDropout(p=0.2, inplace=False)"
    y = fg.ones(2, 3) * 1.0
    assert F.alpha_dropout(y, 0.5, True, inplace=True) is y
