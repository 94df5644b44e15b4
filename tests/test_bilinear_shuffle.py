"""F.bilinear / nn.Bilinear, F.channel_shuffle / nn.ChannelShuffle and the UpsamplingNearest2d /
UpsamplingBilinear2d modules: values and gradients against PyTorch and finite differences,
initialisation under one seed, reprs and errors."""
import warnings

import numpy as np
import pytest

from _backend import fg, reference_torch
from _fd import check_grad

F = fg.nn.functional
nn = fg.nn
torch = reference_torch()
needs_torch = pytest.mark.skipif(torch is None, reason="compares with PyTorch")


@pytest.mark.parametrize("s1,s2", [((5, 2), (5, 3)), ((2,), (3,)), ((2, 4, 2), (2, 4, 3))])
def test_bilinear_finite_differences(s1, s2):
    rng = np.random.default_rng(len(s1))
    arrays = [rng.standard_normal(s1), rng.standard_normal(s2), rng.standard_normal((4, 2, 3)),
              rng.standard_normal(4)]
    check_grad(lambda a, b, w, c: F.bilinear(a, b, w, c), arrays)


@needs_torch
def test_bilinear_module_matches_torch_under_one_seed():
    outs = []
    for lib in (fg, torch):
        lib.manual_seed(3)
        m = lib.nn.Bilinear(2, 3, 4)
        x1 = lib.tensor(np.linspace(-1, 1, 10).reshape(5, 2), dtype=lib.float32)
        x2 = lib.tensor(np.linspace(0, 2, 15).reshape(5, 3), dtype=lib.float32)
        outs.append((m.weight.detach().numpy(), m.bias.detach().numpy(),
                     m(x1, x2).detach().numpy(), repr(m), list(m.state_dict())))
    for a, b in zip(outs[0][:3], outs[1][:3]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert outs[0][3:] == outs[1][3:]


def test_bilinear_errors():
    w = fg.zeros(4, 2, 3)
    with pytest.raises(RuntimeError, match="input1 size does not match weight size: got 3 but "
                                           "expected 2"):
        F.bilinear(fg.zeros(5, 3), fg.zeros(5, 3), w)
    with pytest.raises(RuntimeError, match="input2 size does not match weight size"):
        F.bilinear(fg.zeros(5, 2), fg.zeros(5, 4), w)
    with pytest.raises(RuntimeError, match="input batch dimensions do not match at dim 0: got 5 "
                                           "and 6"):
        F.bilinear(fg.zeros(5, 2), fg.zeros(6, 3), w)
    with pytest.raises(RuntimeError, match="bias size does not match weight size"):
        F.bilinear(fg.zeros(5, 2), fg.zeros(5, 3), w, fg.zeros(3))
    assert repr(nn.Bilinear(2, 3, 4, bias=False)) == \
        "Bilinear(in1_features=2, in2_features=3, out_features=4, bias=False)"


def test_channel_shuffle():
    x = fg.arange(8.0).reshape(1, 4, 2)
    np.testing.assert_array_equal(F.channel_shuffle(x, 2).numpy(),
                                  [[[0, 1], [4, 5], [2, 3], [6, 7]]])
    np.testing.assert_array_equal(nn.ChannelShuffle(2)(x).numpy(), F.channel_shuffle(x, 2).numpy())
    assert repr(nn.ChannelShuffle(3)) == "ChannelShuffle(groups=3)"
    rng = np.random.default_rng(0)
    check_grad(lambda t: F.channel_shuffle(t, 3), [rng.standard_normal((2, 6, 2, 2))])
    with pytest.raises(RuntimeError, match="divisible by groups. Got 3 channels and 2 groups"):
        F.channel_shuffle(fg.zeros(1, 3, 2), 2)
    with pytest.raises(RuntimeError, match="must be positive"):
        F.channel_shuffle(fg.zeros(1, 3, 2), 0)
    with pytest.raises(RuntimeError, match="expects input with > 2 dims"):
        F.channel_shuffle(fg.zeros(2, 4), 2)


@needs_torch
def test_upsampling_modules_match_torch():
    x = np.arange(8.0).reshape(1, 2, 2, 2)
    for make in (lambda lib: lib.nn.UpsamplingNearest2d(scale_factor=2),
                 lambda lib: lib.nn.UpsamplingBilinear2d(size=(3, 5))):
        outs = [(make(lib)(lib.tensor(x)).numpy(), repr(make(lib))) for lib in (fg, torch)]
        np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-6)
        assert outs[0][1] == outs[1][1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = F.upsample_bilinear(fg.tensor(x), scale_factor=2)
        F.upsample_nearest(fg.tensor(x), size=4)
    assert len(caught) == 2 and "deprecated" in str(caught[0].message)
    ty = torch.nn.functional.interpolate(torch.tensor(x), scale_factor=2, mode="bilinear",
                                         align_corners=True)
    np.testing.assert_allclose(y.numpy(), ty.numpy(), rtol=1e-6)
