"""Convolutions (conv1d/conv2d/conv_transpose2d, unfold/fold, the nn modules): outputs and
gradients against torch with identical weights, against float64 finite differences, default
initialisation equal to torch's, and PyTorch's errors for bad input."""
import numpy as np
import pytest
from _backend import child_env, fg, REFERENCE
from _fd import check_grad

F = fg.nn.functional


def _torch():
    return pytest.importorskip("torch")


def _run(lib, fn, arrays, gy):
    ts = [None if a is None else lib.tensor(a, requires_grad=True) for a in arrays]
    y = fn(lib, *ts)
    y.backward(lib.tensor(gy))
    return y.detach().numpy(), [None if t is None else t.grad.numpy() for t in ts]


def _vs_torch(fn, arrays, dtype=np.float64, tol=1e-10):
    torch = _torch()
    arrays = [None if a is None else a.astype(dtype) for a in arrays]
    with torch.no_grad():
        shape = fn(torch, *[None if a is None else torch.tensor(a) for a in arrays]).shape
    gy = np.random.default_rng(5).standard_normal(tuple(shape)).astype(dtype)
    ty, tg = _run(torch, fn, arrays, gy)
    fy, fgr = _run(fg, fn, arrays, gy)
    scale = max(1.0, float(np.abs(ty).max()))
    np.testing.assert_allclose(fy, ty, rtol=tol, atol=tol * scale)
    for a, b in zip(fgr, tg):
        if b is not None:
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.abs(b).max())))


CONV2D_GRID = [
    # N, C, H, W, O, kernel, kwargs
    (2, 3, 8, 8, 4, 3, {}),
    (2, 4, 9, 7, 6, 3, dict(stride=2, padding=1, dilation=2, groups=2)),
    (3, 4, 8, 8, 4, 2, dict(padding="same", groups=4)),
    (2, 3, 7, 9, 5, (3, 2), dict(padding="valid", stride=(1, 2))),
    (2, 3, 6, 6, 4, 1, {}),
    (1, 2, 5, 6, 3, 3, dict(padding=(2, 0), dilation=(1, 2))),
    (2, 6, 10, 10, 4, 5, dict(padding="same", dilation=2, groups=2)),
    (2, 3, 8, 8, 4, 3, dict(bias=False, stride=3)),
    # large enough for the transposed weight-gradient product (SMALL_NT_MACS)
    (2, 6, 14, 14, 16, 5, dict(padding=1)),
    (2, 8, 20, 20, 32, 5, dict(groups=2, padding=2, dilation=(1, 2))),
]


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("N,C,H,W,O,k,kw", CONV2D_GRID)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv2d_vs_torch(N, C, H, W, O, k, kw, dtype):
    kw = dict(kw)
    bias = kw.pop("bias", True)
    g = kw.get("groups", 1)
    kh, kwid = (k, k) if isinstance(k, int) else k
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((N, C, H, W)), rng.standard_normal((O, C // g, kh, kwid)),
              rng.standard_normal(O) if bias else None]
    _vs_torch(lambda lib, x, w, b: lib.nn.functional.conv2d(x, w, b, **kw), arrays, dtype,
              1e-10 if dtype == np.float64 else 2e-5)


CONV1D_GRID = [(2, 3, 10, 4, 3, {}), (2, 4, 11, 6, 3, dict(stride=2, padding=2, groups=2)),
               (1, 2, 9, 2, 4, dict(padding="same", dilation=2)), (3, 2, 7, 3, 2, dict(bias=False))]


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("N,C,L,O,k,kw", CONV1D_GRID)
def test_conv1d_vs_torch(N, C, L, O, k, kw):
    kw = dict(kw)
    bias = kw.pop("bias", True)
    g = kw.get("groups", 1)
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((N, C, L)), rng.standard_normal((O, C // g, k)),
              rng.standard_normal(O) if bias else None]
    _vs_torch(lambda lib, x, w, b: lib.nn.functional.conv1d(x, w, b, **kw), arrays)


CONVT_GRID = [(2, 3, 5, 5, 4, 3, {}), (2, 4, 5, 4, 6, 3, dict(stride=2, padding=1, groups=2,
                                                               output_padding=1)),
              (1, 2, 4, 4, 3, 2, dict(stride=3, dilation=2, output_padding=2)),
              (2, 3, 3, 6, 2, (2, 3), dict(bias=False, padding=(0, 1)))]


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("N,C,H,W,O,k,kw", CONVT_GRID)
def test_conv_transpose2d_vs_torch(N, C, H, W, O, k, kw):
    kw = dict(kw)
    bias = kw.pop("bias", True)
    g = kw.get("groups", 1)
    kh, kwid = (k, k) if isinstance(k, int) else k
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal((N, C, H, W)), rng.standard_normal((C, O // g, kh, kwid)),
              rng.standard_normal(O) if bias else None]
    _vs_torch(lambda lib, x, w, b: lib.nn.functional.conv_transpose2d(x, w, b, **kw), arrays)


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("kw", [dict(kernel_size=3), dict(kernel_size=(2, 3), stride=2, padding=1,
                                                           dilation=(1, 2))])
def test_unfold_fold_vs_torch(kw):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 8))
    _vs_torch(lambda lib, t: lib.nn.functional.unfold(t, **kw), [x])
    torch = _torch()
    cols = torch.nn.functional.unfold(torch.tensor(x), **kw)
    c = rng.standard_normal(tuple(cols.shape))
    _vs_torch(lambda lib, t: lib.nn.functional.fold(t, (7, 8), **kw), [c])


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_conv2d_module_padding_modes_vs_torch(mode):
    torch = _torch()
    tm = torch.nn.Conv2d(3, 4, 3, padding=(1, 2), padding_mode=mode).double()
    fm = fg.nn.Conv2d(3, 4, 3, padding=(1, 2), padding_mode=mode, dtype=fg.float64)
    fm.load_state_dict({k: fg.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    x = np.random.default_rng(4).standard_normal((2, 3, 6, 7))
    tx, fx = torch.tensor(x, requires_grad=True), fg.tensor(x, requires_grad=True)
    ty, fy = tm(tx), fm(fx)
    ty.sum().backward()
    fy.sum().backward()
    np.testing.assert_allclose(fy.detach().numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fm.weight.grad.numpy(), tm.weight.grad.numpy(), rtol=1e-10)
    assert repr(fm) == repr(tm).replace("torch.", "")


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("make", [lambda nn: nn.Conv2d(1, 6, 5), lambda nn: nn.Conv1d(3, 4, 3),
                                  lambda nn: nn.Conv2d(4, 8, 3, groups=2, bias=False),
                                  lambda nn: nn.ConvTranspose2d(4, 6, 3, groups=2)])
def test_default_init_equals_torch(make):
    torch = _torch()
    torch.manual_seed(0)
    fg.manual_seed(0)
    tm, fm = make(torch.nn), make(fg.nn)
    tsd, fsd = tm.state_dict(), fm.state_dict()
    assert list(tsd) == list(fsd)
    for k in tsd:
        np.testing.assert_array_equal(fsd[k].numpy(), tsd[k].numpy())


def test_conv2d_finite_differences():
    def fn(x, w, b):
        return F.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2), groups=2)
    rng = np.random.default_rng(6)
    check_grad(fn, [rng.standard_normal((2, 4, 5, 6)), rng.standard_normal((4, 2, 2, 3)),
                    rng.standard_normal(4)])


def test_conv1d_same_even_kernel_finite_differences():
    rng = np.random.default_rng(7)
    check_grad(lambda x, w: F.conv1d(x, w, padding="same"),
               [rng.standard_normal((2, 2, 7)), rng.standard_normal((3, 2, 4))])


def test_conv_transpose2d_finite_differences():
    rng = np.random.default_rng(8)
    check_grad(lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1,
                                                  groups=2),
               [rng.standard_normal((2, 4, 3, 3)), rng.standard_normal((4, 1, 3, 3)),
                rng.standard_normal(2)])


def test_fold_unfold_finite_differences():
    rng = np.random.default_rng(9)
    check_grad(lambda x: F.unfold(x, (2, 3), padding=1, stride=2), [rng.standard_normal((1, 2, 5, 5))])
    check_grad(lambda c: F.fold(c, (4, 5), 2, stride=(2, 1)), [rng.standard_normal((1, 8, 8))])


def _grad_norms(op):
    """x, w -> |d(sum op(x, w)^2)/dx|^2 + |.../dw|^2 with the gradients taken under create_graph,
    so its own gradient goes through op's backward twice."""
    def fn(x, w):
        with fg.enable_grad():        # the finite differences evaluate fn under no_grad
            x = x if x.requires_grad else x.detach().requires_grad_()
            w = w if w.requires_grad else w.detach().requires_grad_()
            y = op(x, w)
            gx, gw = fg.autograd.grad((y * y).sum(), (x, w), create_graph=True)
            return (gx * gx).sum() + (gw * gw).sum()
    return fn


def test_conv2d_double_backward_finite_differences():
    """Under create_graph the gradients are recorded ops, so the grad of a grad is right."""
    rng = np.random.default_rng(10)
    check_grad(_grad_norms(lambda x, w: F.conv2d(x, w, stride=(1, 2), padding=1)),
               [rng.standard_normal((2, 2, 3, 3)), rng.standard_normal((3, 2, 3, 3))])


def test_conv2d_unbatched_and_threads_agree():
    rng = np.random.default_rng(11)
    x = fg.tensor(rng.standard_normal((3, 9, 9)).astype(np.float32))
    w = fg.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    assert tuple(F.conv2d(x, w).shape) == (4, 7, 7)
    np.testing.assert_allclose(F.conv2d(x, w).numpy(), F.conv2d(x.unsqueeze(0), w)[0].numpy())


def test_conv_keeps_or_recomputes_columns_alike():
    """The weight gradient is the same whether the forward keeps its column matrices or the
    backward builds them again."""
    from fastgrad._core import ops_conv
    rng = np.random.default_rng(12)
    x = rng.standard_normal((4, 3, 8, 8))
    w = rng.standard_normal((5, 3, 3, 3))
    grads = []
    for keep in (64 << 20, 0):
        old = ops_conv._set_cols_keep(keep)
        try:
            tw = fg.tensor(w, requires_grad=True)
            F.conv2d(fg.tensor(x), tw, padding=1, stride=(2, 1)).pow(2).sum().backward()
            grads.append(tw.grad.numpy())
        finally:
            ops_conv._set_cols_keep(old)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12)



TILED_GRID = [
    # N, C, H, W, O, kernel, kwargs: unit stride, odd O and K (partial tiles), padding, dilation
    (3, 1, 28, 28, 6, 5, dict(padding=2)),
    (3, 6, 14, 14, 16, 5, {}),
    (2, 3, 9, 11, 7, (3, 2), dict(padding=(1, 2), dilation=(2, 1))),
    (2, 2, 5, 5, 1, 1, dict(padding=1, bias=False)),
    (2, 5, 33, 7, 13, 3, dict(padding="same")),
    # channel tiles: O a multiple of the lanes (16 + 8 channels; 8 alone; 32, no padding)
    (2, 3, 10, 9, 24, 3, dict(padding=1)),
    (2, 4, 8, 8, 8, 3, dict(dilation=2, bias=False)),
    (2, 2, 9, 12, 32, 3, {}),
]


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("N,C,H,W,O,k,kw", TILED_GRID)
@pytest.mark.parametrize("level", [2, 1, 0])
def test_conv2d_float32_tiled_and_blas_paths_vs_torch(N, C, H, W, O, k, kw, level):
    """float32 unit-stride convolutions run register tiles (Note [Convolution tiles]): AVX-512
    (level 2) or AVX2+FMA (1) where the CPU has them, the BLAS products otherwise (0); every
    path agrees with torch."""
    from fastgrad._core import conv_kernels
    kw = dict(kw)
    bias = kw.pop("bias", True)
    kh, kwid = (k, k) if isinstance(k, int) else k
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((N, C, H, W)), rng.standard_normal((O, C, kh, kwid)),
              rng.standard_normal(O) if bias else None]
    best = conv_kernels.tiles(True)
    try:
        if conv_kernels.tiles(level) != level:
            pytest.skip(f"this CPU runs tiles up to level {best}")
        _vs_torch(lambda lib, x, w, b: lib.nn.functional.conv2d(x, w, b, **kw), arrays,
                  np.float32, 2e-5)
    finally:
        conv_kernels.tiles(best)


@pytest.mark.skipif(REFERENCE, reason="fastgrad's promise: PyTorch's convolutions may differ "
                    "in the last bits between thread counts")
def test_conv2d_float32_threads_agree_exactly():
    """A sample's sums do not depend on the thread that runs it, nor the weight gradient's on
    the thread count."""
    rng = np.random.default_rng(13)
    x = rng.standard_normal((16, 3, 12, 12)).astype(np.float32)
    w = rng.standard_normal((8, 3, 5, 5)).astype(np.float32)
    out = []
    old = fg.get_num_threads()
    try:
        for n in (1, 2):
            fg.set_num_threads(n)
            tx, tw = fg.tensor(x, requires_grad=True), fg.tensor(w, requires_grad=True)
            tb = fg.zeros(8, requires_grad=True)
            y = F.conv2d(tx, tw, tb, padding=2)
            y.pow(2).sum().backward()
            out.append([y.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()])
    finally:
        fg.set_num_threads(old)
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)

# --- errors --------------------------------------------------------------------------------------

def test_wrong_channel_count_names_expected_and_got():
    with pytest.raises(RuntimeError, match=r"expected input\[2, 3, 8, 8\] to have 1 channels, "
                                           r"but got 3 channels"):
        F.conv2d(fg.randn(2, 3, 8, 8), fg.randn(6, 1, 5, 5))
    with pytest.raises(RuntimeError, match="to have 4 channels, but got 3 channels"):
        F.conv_transpose2d(fg.randn(2, 3, 8, 8), fg.randn(4, 6, 3, 3))
    with pytest.raises(RuntimeError, match="to have 2 channels"):
        fg.nn.Conv1d(2, 4, 3)(fg.randn(1, 3, 10))


def test_input_smaller_than_kernel():
    with pytest.raises(RuntimeError, match=r"Kernel size: \(5 x 5\). Kernel size can't be greater"):
        F.conv2d(fg.randn(2, 3, 4, 4), fg.randn(6, 3, 5, 5))
    with pytest.raises(RuntimeError, match="Kernel size can't be greater"):
        F.conv1d(fg.randn(2, 3, 4), fg.randn(6, 3, 5))


def test_bad_arguments():
    x = fg.randn(2, 3, 8, 8)
    with pytest.raises(RuntimeError, match="Expected 3D \\(unbatched\\) or 4D"):
        F.conv2d(fg.randn(2, 3), fg.randn(6, 3, 5, 5))
    with pytest.raises(RuntimeError, match="divisible by 2 at dimension 0"):
        F.conv2d(x, fg.randn(3, 1, 5, 5), groups=2)
    with pytest.raises(RuntimeError, match="not supported for strided"):
        F.conv2d(x, fg.randn(6, 3, 2, 2), stride=2, padding="same")
    with pytest.raises(RuntimeError, match="Invalid padding string"):
        F.conv2d(x, fg.randn(6, 3, 2, 2), padding="foo")
    with pytest.raises(RuntimeError, match="non-positive stride"):
        F.conv2d(x, fg.randn(6, 3, 2, 2), stride=0)
    with pytest.raises(RuntimeError, match="negative padding"):
        F.conv2d(x, fg.randn(6, 3, 2, 2), padding=-1)
    with pytest.raises(RuntimeError, match="expected bias to be 1-dimensional with 6 elements"):
        F.conv2d(x, fg.randn(6, 3, 3, 3), bias=fg.randn(5))
    with pytest.raises(RuntimeError, match="expected scalar type"):
        F.conv2d(x.double(), fg.randn(6, 3, 3, 3))


def test_module_constructor_errors():
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        fg.nn.Conv2d(3, 6, 3, groups=2)
    with pytest.raises(ValueError, match="out_channels must be divisible by groups"):
        fg.nn.Conv2d(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        fg.nn.Conv2d(4, 6, 3, padding_mode="foo")
    with pytest.raises(ValueError, match="not supported for strided"):
        fg.nn.Conv2d(4, 6, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match='Only "zeros" padding mode'):
        fg.nn.ConvTranspose2d(3, 6, 3, padding_mode="reflect")


# --- the example ---------------------------------------------------------------------------------

@pytest.mark.skipif(REFERENCE, reason="runs fastgrad's example script")
def test_lenet_example_loss_falls():
    import os
    import re
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = child_env()
    out = subprocess.run([sys.executable, os.path.join(root, "examples", "lenet_digits.py"), "120"],
                         capture_output=True, text=True, timeout=120, check=True, env=env).stdout
    losses = [float(v) for v in re.findall(r"loss (\d+\.\d+)", out)]
    assert len(losses) >= 4, out
    assert losses[-1] < 0.75 * losses[0], out


def test_conv_transpose2d_double_backward_finite_differences():
    rng = np.random.default_rng(13)
    check_grad(_grad_norms(lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, groups=2)),
               [rng.standard_normal((1, 4, 3, 3)), rng.standard_normal((4, 1, 3, 3))])


@pytest.mark.parametrize("O,padding", [(6, 2), (16, 1), (3, 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("level", [2, 1, 0])
def test_conv_weight_gradient_of_an_infinite_input_is_infinite(O, padding, dtype, level):
    """The shifted rows pair zeros of the widened gradient with input values (Note [Shifted rows
    for unit stride]): an inf in the input made the weight gradient NaN where it is inf."""
    if not REFERENCE:
        from fastgrad._core import conv_kernels
        best = conv_kernels.tiles(True)
        if conv_kernels.tiles(level) != level:
            conv_kernels.tiles(best)
            pytest.skip(f"this CPU runs tiles up to level {best}")
    elif level:
        pytest.skip("fastgrad's paths")
    try:
        x = np.ones((3, 4, 9, 9), dtype)
        x[1] = np.inf                         # one sample all inf, the others finite
        conv = fg.nn.Conv2d(4, O, 3, padding=padding, dtype=fg.float32 if dtype == np.float32
                            else fg.float64)
        conv(fg.tensor(x)).sum().backward()
        g = conv.weight.grad.numpy()
        assert np.isposinf(g).all(), g
        np.testing.assert_array_equal(conv.bias.grad.numpy(), 3 * (9 + 2 * padding - 2) ** 2)
        conv1 = fg.nn.Conv1d(4, O, 3, padding=padding, dtype=conv.weight.dtype)
        conv1(fg.tensor(x[:, :, 0])).sum().backward()
        assert np.isposinf(conv1.weight.grad.numpy()).all()
    finally:
        if not REFERENCE:
            conv_kernels.tiles(best)


@pytest.mark.skipif(REFERENCE, reason="PyTorch's padded im2col multiplies its zeros by the "
                    "gradient's NaN too (56 NaN here where 16 terms hold one)")
@pytest.mark.parametrize("kw", [dict(dilation=2, padding=2), dict(padding=1, groups=2),
                                dict(padding=1), dict(stride=2, padding=1)])
def test_conv_weight_gradient_counts_only_terms_that_exist(kw):
    """A NaN in the output gradient reaches exactly the weights whose taps read a real input
    element at that position; padding is no term (it was a zero times NaN)."""
    conv = fg.nn.Conv2d(4, 6, 3, bias=False, **kw)
    x = fg.ones(2, 4, 6, 6)
    y = conv(x)
    g = np.ones(tuple(y.shape), np.float32)
    g[1, -1, -1, -1] = np.nan
    y.backward(fg.tensor(g))
    gw = conv.weight.grad.numpy()
    # the taps of the last output position that read inside the 6 x 6 input
    OH, OW = y.shape[2], y.shape[3]
    s, p, d = kw.get("stride", 1), kw.get("padding", 0), kw.get("dilation", 1)
    taps = [(ki, kj) for ki in range(3) for kj in range(3)
            if 0 <= (OH - 1) * s - p + ki * d < 6 and 0 <= (OW - 1) * s - p + kj * d < 6]
    expected = np.zeros(gw.shape, bool)
    for ki, kj in taps:
        expected[-1, :, ki, kj] = True
    np.testing.assert_array_equal(np.isnan(gw), expected)
    assert np.isfinite(gw[~expected]).all()
