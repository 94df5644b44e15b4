"""BatchNorm1d/2d, GroupNorm, InstanceNorm1d/2d, LayerNorm over several dims, Dropout1d/2d,
interpolate/Upsample and PixelShuffle/PixelUnshuffle: values, gradients and running statistics
against PyTorch with identical parameters, gradients against float64 finite differences,
channel-dropout masks equal to PyTorch's after manual_seed, and PyTorch's exceptions."""
import warnings

import numpy as np
import pytest
from _backend import REFERENCE, fg
from _fd import check_grad

F = fg.nn.functional
nn = fg.nn


def _t(x, rg=False):
    return fg.tensor(x.detach().numpy(), requires_grad=rg)


def _close(a, b, tol=2e-5):
    np.testing.assert_allclose(np.asarray(a.detach().numpy(), dtype=np.float64),
                               np.asarray(b.detach().numpy(), dtype=np.float64),
                               rtol=tol, atol=tol)


def _run_both(torch, tm, fm, shape, train, steps=3):
    """Load tm's state into fm, run both `steps` times in train/eval mode on fresh inputs,
    backpropagate a random cotangent; compare outputs, input and parameter gradients and
    every buffer (running statistics, batch counts)."""
    fm.load_state_dict({k: fg.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    torch.manual_seed(0)
    tm.train(train)
    fm.train(train)
    for _ in range(steps):
        x = torch.randn(*shape, requires_grad=True)
        out = tm(x)
        cot = torch.randn(out.shape)
        out.backward(cot)
        fx = _t(x, True)
        fout = fm(fx)
        fout.backward(_t(cot))
        _close(fout, out)
        _close(fx.grad, x.grad, 1e-4)
    fp = dict(fm.named_parameters())
    for name, p in tm.named_parameters():
        _close(fp[name].grad, p.grad, 1e-4)
    fb = dict(fm.named_buffers())
    for name, b in tm.named_buffers():
        _close(fb[name], b, 1e-6)


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("cls,shape", [("BatchNorm2d", (4, 3, 5, 6)), ("BatchNorm1d", (6, 3)),
                                       ("BatchNorm1d", (4, 3, 7))])
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("track", [True, False])
@pytest.mark.parametrize("train", [True, False])
def test_batch_norm_matches_torch(cls, shape, momentum, affine, track, train):
    torch = pytest.importorskip("torch")
    kw = dict(momentum=momentum, affine=affine, track_running_stats=track)
    tm = getattr(torch.nn, cls)(3, **kw)
    if track:                      # non-trivial running statistics for eval mode
        tm.running_mean.normal_()
        tm.running_var.uniform_(0.5, 2)
    _run_both(torch, tm, getattr(nn, cls)(3, **kw), shape, train)


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("groups,channels", [(1, 6), (2, 6), (3, 6), (6, 6)])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(2, 6, 4, 5), (3, 6), (2, 6, 7)])
def test_group_norm_matches_torch(groups, channels, affine, shape):
    torch = pytest.importorskip("torch")
    tm = torch.nn.GroupNorm(groups, channels, affine=affine)
    if affine:
        torch.nn.init.normal_(tm.weight)
        torch.nn.init.normal_(tm.bias)
    if shape == (3, 6) and channels // groups < 3:
        shape = (3, 6, 4)          # one or two values per group: ill-conditioned in float32
    _run_both(torch, tm, nn.GroupNorm(groups, channels, affine=affine), shape, True)


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("cls,shape", [("InstanceNorm2d", (2, 3, 4, 5)),
                                       ("InstanceNorm2d", (3, 4, 5)),
                                       ("InstanceNorm1d", (2, 3, 6)), ("InstanceNorm1d", (3, 6))])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("track", [True, False])
@pytest.mark.parametrize("train", [True, False])
def test_instance_norm_matches_torch(cls, shape, affine, track, train):
    torch = pytest.importorskip("torch")
    kw = dict(affine=affine, track_running_stats=track)
    _run_both(torch, getattr(torch.nn, cls)(3, **kw), getattr(nn, cls)(3, **kw), shape, train)


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("normalized_shape", [(6,), (5, 6), (4, 5, 6)])
def test_layer_norm_over_several_dims_matches_torch(normalized_shape):
    torch = pytest.importorskip("torch")
    tm = torch.nn.LayerNorm(normalized_shape)
    torch.nn.init.normal_(tm.weight)
    torch.nn.init.normal_(tm.bias)
    _run_both(torch, tm, nn.LayerNorm(normalized_shape), (2, 4, 5, 6), True, 1)


NORM_GRADS = {
    "batch_norm2d": ([(3, 2, 2, 2), (2,), (2,)],
                     lambda x, w, b: F.batch_norm(x, None, None, w, b, True)),
    "group_norm": ([(2, 4, 3), (4,), (4,)], lambda x, w, b: F.group_norm(x, 2, w, b)),
    "instance_norm": ([(2, 2, 3, 2), (2,), (2,)],
                      lambda x, w, b: F.instance_norm(x, weight=w, bias=b)),
    "layer_norm2": ([(2, 3, 4), (3, 4), (3, 4)], lambda x, w, b: F.layer_norm(x, (3, 4), w, b)),
}


@pytest.mark.parametrize("name", sorted(NORM_GRADS))
def test_norm_gradient_matches_finite_differences(name, rng):
    shapes, fn = NORM_GRADS[name]
    check_grad(fn, [rng.standard_normal(s) for s in shapes])


def test_batch_norm_cumulative_average():
    """momentum=None: the running mean is the plain average of the batch means."""
    m = nn.BatchNorm2d(2, momentum=None)
    means = []
    for _ in range(4):
        x = fg.randn(3, 2, 2, 2) + 5
        means.append(x.numpy().mean(axis=(0, 2, 3)))
        m(x)
    np.testing.assert_allclose(m.running_mean.numpy(), np.mean(means, 0), rtol=1e-5)
    assert m.num_batches_tracked.item() == 4


def test_norm_bad_input():
    with pytest.raises(ValueError, match="num_channels \\(4\\) must be divisible by num_groups"):
        nn.GroupNorm(3, 4)
    with pytest.raises(RuntimeError, match="divisible by num_groups"):
        F.group_norm(fg.randn(2, 4, 3), 3)
    with pytest.raises(ValueError, match="expected 4D input \\(got 3D input\\)"):
        nn.BatchNorm2d(3)(fg.randn(2, 3, 4))
    with pytest.raises(ValueError, match="expected 3D or 4D input"):
        nn.InstanceNorm2d(3)(fg.randn(2, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(fg.randn(1, 3))


# --- channel dropout -----------------------------------------------------------------------------

@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("fn,shape", [("dropout2d", (4, 3, 5, 6)), ("dropout2d", (3, 5, 6)),
                                      ("dropout1d", (4, 3, 5)), ("dropout1d", (3, 5))])
@pytest.mark.parametrize("p", [0.2, 0.5, 1.0])
def test_channel_dropout_masks_equal_torch(fn, shape, p):
    torch = pytest.importorskip("torch")
    x = torch.randn(*shape, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(9)
        out = getattr(torch.nn.functional, fn)(x, p)
        fg.manual_seed(9)
        fx = _t(x, True)
        fout = getattr(F, fn)(fx, p)
    np.testing.assert_array_equal(fout.detach().numpy(), out.detach().numpy())
    out.sum().backward()
    fout.sum().backward()
    np.testing.assert_array_equal(fx.grad.numpy(), x.grad.numpy())


def test_dropout2d_zeroes_whole_channels_and_eval_is_identity():
    m = nn.Dropout2d(0.5)
    y = m(fg.ones(8, 16, 3, 3)).numpy()
    per_channel = y.reshape(8, 16, 9)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2).all(-1))
    assert 0 < (per_channel[..., 0] == 0).sum() < 128
    m.eval()
    x = fg.randn(2, 3, 4, 4)
    assert m(x) is x
    with pytest.raises(RuntimeError, match="dropout1d: Expected 2D or 3D input"):
        nn.Dropout1d()(fg.randn(2, 3, 4, 5))
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout2d(1.5)


# --- resampling ----------------------------------------------------------------------------------

@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("mode,align", [("nearest", None), ("nearest-exact", None),
                                        ("bilinear", False), ("bilinear", True)])
@pytest.mark.parametrize("kw", [dict(scale_factor=2), dict(size=(7, 4)),
                                dict(scale_factor=(1.5, 0.7)), dict(size=5)])
def test_interpolate_matches_torch(mode, align, kw):
    torch = pytest.importorskip("torch")
    x = torch.randn(2, 3, 5, 6, requires_grad=True)
    out = torch.nn.functional.interpolate(x, mode=mode, align_corners=align, **kw)
    cot = torch.randn(out.shape)
    out.backward(cot)
    fx = _t(x, True)
    fout = F.interpolate(fx, mode=mode, align_corners=align, **kw)
    fout.backward(_t(cot))
    assert tuple(fout.shape) == tuple(out.shape)
    _close(fout, out)
    _close(fx.grad, x.grad, 1e-4)
    m = torch.nn.Upsample(mode=mode, align_corners=align, **kw)
    fm = nn.Upsample(mode=mode, align_corners=align, **kw)
    _close(fm(fx), m(x))


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
def test_interpolate_linear_1d_matches_torch():
    torch = pytest.importorskip("torch")
    x = torch.randn(2, 3, 7)
    for kw in (dict(scale_factor=2.5), dict(size=4, align_corners=True)):
        _close(F.interpolate(_t(x), mode="linear", **kw),
               torch.nn.functional.interpolate(x, mode="linear", **kw))


@pytest.mark.parametrize("mode,align", [("bilinear", False), ("bilinear", True),
                                        ("nearest", None)])
def test_interpolate_gradient_matches_finite_differences(mode, align, rng):
    check_grad(lambda x: F.interpolate(x, size=(3, 5), mode=mode, align_corners=align),
               [rng.standard_normal((1, 2, 2, 3))])


def test_interpolate_bad_input():
    x = fg.randn(1, 2, 3, 4)
    with pytest.raises(NotImplementedError, match="Got 4D input, but linear mode needs 3D"):
        F.interpolate(x, scale_factor=2, mode="linear")
    with pytest.raises(ValueError, match="either size or scale_factor should be defined"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="only one of size or scale_factor"):
        F.interpolate(x, size=(4, 4), scale_factor=2)
    with pytest.raises(ValueError, match="align_corners option can only be set"):
        F.interpolate(x, scale_factor=2, align_corners=True)


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("shape,r", [((2, 8, 3, 5), 2), ((18, 2, 2), 3), ((2, 1, 4, 2, 3), 1)])
def test_pixel_shuffle_matches_torch(shape, r):
    torch = pytest.importorskip("torch")
    x = torch.randn(*shape)
    y = torch.nn.functional.pixel_shuffle(x, r)
    np.testing.assert_array_equal(nn.PixelShuffle(r)(_t(x)).numpy(), y.numpy())
    np.testing.assert_array_equal(nn.PixelUnshuffle(r)(_t(y)).numpy(), x.numpy())


def test_pixel_shuffle_gradient_and_bad_input(rng):
    check_grad(lambda x: F.pixel_shuffle(x, 2) * F.pixel_shuffle(x, 2),
               [rng.standard_normal((1, 4, 2, 3))])
    with pytest.raises(RuntimeError, match="divisible by the square of upscale_factor"):
        F.pixel_shuffle(fg.randn(1, 5, 2, 2), 2)
    with pytest.raises(RuntimeError, match="divisible by downscale_factor"):
        F.pixel_unshuffle(fg.randn(1, 1, 3, 4), 2)


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
def test_reprs_match_torch():
    torch = pytest.importorskip("torch")
    for name, args in (("BatchNorm2d", (3,)), ("InstanceNorm1d", (3,)), ("GroupNorm", (2, 4)),
                       ("Dropout2d", ()), ("PixelShuffle", (2,)), ("PixelUnshuffle", (3,))):
        assert repr(getattr(nn, name)(*args)) == repr(getattr(torch.nn, name)(*args))
    assert repr(nn.Upsample(scale_factor=2)) == repr(torch.nn.Upsample(scale_factor=2))


def test_layer_norm_double_backward_matches_finite_differences(rng):
    """The fused node's create_graph rule (recorded ops) is differentiable again."""
    def fn(x, w):
        with fg.enable_grad():
            if not x.requires_grad:           # the finite-difference evaluations
                x = x.detach().requires_grad_()
            y = F.layer_norm(x, (3,), w, None)
            (g,) = fg.autograd.grad((y * y * y).sum(), x, create_graph=True)
        return g
    check_grad(fn, [rng.standard_normal((2, 3)), rng.standard_normal(3)])


def test_layer_norm_is_one_node_and_weight_only_gradient():
    x = fg.randn(4, 5)
    w = fg.randn(5, requires_grad=True)
    y = F.layer_norm(x, (5,), w, None)
    assert type(y.grad_fn).__name__ == "NativeLayerNormBackward0"
    y.sum().backward()
    xn = x.numpy()
    xhat = (xn - xn.mean(1, keepdims=True)) / np.sqrt(xn.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(w.grad.numpy(), xhat.sum(0), rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(REFERENCE, reason="fastgrad's thread team")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1024, 128), (64 * 9 + 3, 128), (65, 7, 300), (3, 5)])
def test_layer_norm_does_not_depend_on_the_thread_count(dtype, shape):
    """Note [Layer norm in row blocks]: the rows are shared across threads and dw, db summed by
    blocks in a fixed order, so 1 and 2 threads give the same bits."""
    x0 = np.random.default_rng(5).standard_normal(shape).astype(dtype)
    cot = np.cos(np.arange(x0.size)).reshape(shape).astype(dtype)
    runs, old = [], fg.get_num_threads()
    try:
        for threads in (1, 2):
            fg.set_num_threads(threads)
            x = fg.tensor(x0, requires_grad=True)
            ln = fg.nn.LayerNorm(shape[-1], dtype=fg.float32 if dtype == np.float32 else
                                 fg.float64)
            with fg.no_grad():
                ln.weight.copy_(fg.tensor(np.linspace(0.5, 1.5, shape[-1]).astype(dtype)))
            y = ln(x)
            y.backward(fg.tensor(cot))
            runs.append([y.detach().numpy(), x.grad.numpy(), ln.weight.grad.numpy(),
                         ln.bias.grad.numpy()])
    finally:
        fg.set_num_threads(old)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    xh = (x0 - x0.mean(-1, keepdims=True)) / np.sqrt(x0.var(-1, keepdims=True) + 1e-5)
    tol = 1e-3 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(runs[0][3], cot.reshape(-1, shape[-1]).sum(0), rtol=tol, atol=tol)
    np.testing.assert_allclose(runs[0][2], (cot * xh).reshape(-1, shape[-1]).sum(0), rtol=tol,
                               atol=tol)


@pytest.mark.parametrize("make,shape", [
    (lambda: fg.nn.BatchNorm2d(3), (0, 3, 4, 4)), (lambda: fg.nn.BatchNorm2d(3), (2, 3, 0, 4)),
    (lambda: fg.nn.BatchNorm1d(3), (0, 3)), (lambda: fg.nn.GroupNorm(3, 3), (0, 3, 4, 4)),
    pytest.param(lambda: fg.nn.GroupNorm(1, 3), (2, 3, 0, 4), marks=pytest.mark.skipif(
        REFERENCE, reason="PyTorch gives NaN weight gradients here")),
    pytest.param(lambda: fg.nn.InstanceNorm2d(3, affine=True, track_running_stats=True),
                 (0, 3, 4, 4), marks=pytest.mark.skipif(
                     REFERENCE, reason="PyTorch turns the running statistics to NaN here")),
    (lambda: fg.nn.InstanceNorm2d(3, affine=True, track_running_stats=True), (2, 3, 0, 4))])
def test_norm_of_an_empty_batch_is_empty(make, shape):
    """PyTorch's checks refuse exactly one value per channel, not zero: an empty batch trains to
    an empty result with zero parameter gradients (it raised here), the running statistics kept
    (PyTorch's InstanceNorm turns them to NaN on an empty batch, and GroupNorm's weight gradient
    on empty planes: not copied)."""
    m = make()
    x = fg.zeros(shape, requires_grad=True)
    y = m(x)
    assert tuple(y.shape) == shape
    y.sum().backward()
    assert tuple(x.grad.shape) == shape
    for p in m.parameters():
        np.testing.assert_array_equal(p.grad.numpy(), 0)
    if getattr(m, "running_mean", None) is not None:
        np.testing.assert_array_equal(m.running_mean.numpy(), 0)
        np.testing.assert_array_equal(m.running_var.numpy(), 1)


def test_norm_still_refuses_one_value_per_channel():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        fg.nn.BatchNorm1d(3)(fg.zeros(1, 3))
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        fg.nn.InstanceNorm1d(3)(fg.zeros(2, 3, 1))
