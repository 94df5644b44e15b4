"""Work fused with linear's products (Note [Work beside a product] in blas.pyx): the ReLU
clamped in the forward product's own pass (ops_linear.linear_relu, used by the transformer
layers' feed-forward block) and the bias gradient summed beside the backward's products. Each
must give exactly what the unfused ops give, on one thread and two, split or not, with the same
graph (grad_fn names, hooks, double backward)."""
import numpy as np
import pytest

from _backend import REFERENCE, fg
from _fd import check_grad

F = fg.nn.functional


@pytest.fixture
def core():
    """fastgrad's internals (skipped in reference mode), with the thread count and the
    split threshold restored afterwards."""
    if REFERENCE:
        pytest.skip("fastgrad's own fused paths")
    from fastgrad._core import blas, ops_linear
    threads = fg.get_num_threads()
    split = blas.set_split_macs(1 << 22)
    blas.set_split_macs(split)
    yield ops_linear, blas
    fg.set_num_threads(threads)
    blas.set_split_macs(split)


def _names(t):
    """grad_fn names along the first edges from t."""
    out = []
    fn = t.grad_fn
    while fn is not None:
        out.append(type(fn).__name__ if not hasattr(fn, "name") else fn.name())
        fn = fn.next_functions[0][0] if fn.next_functions else None
    return out


def _data(shape, seed, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _run(fn, x, w, b, g, rg=(True, True, True)):
    xt = fg.tensor(x, requires_grad=rg[0])
    wt = fg.tensor(w, requires_grad=rg[1])
    bt = None if b is None else fg.tensor(b, requires_grad=rg[2])
    y = fn(xt, wt, bt)
    if y.requires_grad:
        y.backward(fg.tensor(g))
    return [y.detach().numpy().copy()] + [
        None if t is None or t.grad is None else t.grad.numpy().copy() for t in (xt, wt, bt)]


def _unfused(x, w, b):
    return F.relu(F.linear(x, w, b))


# (leading dims, in, out): below the small-linear threshold, on BLAS unsplit, on BLAS split
SHAPES = [((3,), 4, 5), ((2, 3), 4, 5), ((64,), 32, 48), ((4, 16), 32, 40), ((0,), 3, 4),
          ((5,), 0, 3)]


@pytest.mark.parametrize("lead,k,n", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("split", [False, True])
def test_linear_relu_equals_relu_of_linear(core, lead, k, n, dtype, bias, split):
    ops_linear, blas = core
    if split:
        blas.set_split_macs(1)
    x = _data(lead + (k,), 1, dtype)
    x[..., :1] = 0.0                       # exact zeros and negative zeros at the clamp
    w = _data((n, k), 2, dtype)
    b = _data(n, 3, dtype) if bias else None
    g = _data(lead + (n,), 4, dtype)
    for threads in (1, 2):
        fg.set_num_threads(threads)
        got = _run(ops_linear.linear_relu, x, w, b, g)
        want = _run(_unfused, x, w, b, g)
        for a, e in zip(got, want):
            if e is None:
                assert a is None
            else:
                np.testing.assert_array_equal(a, e)
                assert a.dtype == e.dtype


@pytest.mark.parametrize("rg", [(True, False, False), (False, True, False), (False, False, True),
                                (False, False, False), (True, True, True)])
def test_linear_relu_requires_grad_combinations(core, rg):
    ops_linear, blas = core
    x, w, b, g = _data((8, 16), 5), _data((24, 16), 6), _data(24, 7), _data((8, 24), 8)
    got = _run(ops_linear.linear_relu, x, w, b, g, rg)
    want = _run(_unfused, x, w, b, g, rg)
    for a, e in zip(got, want):
        assert (a is None) == (e is None)
        if e is not None:
            np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("lead", [(6,), (2, 3)])
def test_linear_relu_finite_differences(core, lead):
    ops_linear, _ = core
    x = _data(lead + (5,), 9)
    w = _data((7, 5), 10)
    b = _data(7, 11)
    # keep every pre-activation away from the kink, where the derivative is not defined
    pre = x @ w.T + b
    b = b + np.where(np.abs(pre) < 0.05, 0.1, 0.0).max(axis=tuple(range(len(lead))))
    check_grad(lambda x, w, b: ops_linear.linear_relu(x, w, b), [x, w, b])


def test_linear_relu_on_blas_matches_finite_differences(core):
    ops_linear, blas = core
    blas.set_split_macs(1)
    fg.set_num_threads(2)
    x, w, b = _data((40, 20), 12), _data((30, 20), 13), _data(30, 14)
    check_grad(lambda x, w, b: ops_linear.linear_relu(x, w, b), [x, w, b])


def test_linear_relu_nan_and_signed_zero(core):
    ops_linear, _ = core
    x = np.zeros((64, 32), np.float32)
    w = np.zeros((48, 32), np.float32)
    b = np.zeros(48, np.float32)
    b[0], b[1], b[2] = np.nan, -0.0, -1.0
    got = ops_linear.linear_relu(fg.tensor(x), fg.tensor(w), fg.tensor(b)).numpy()
    want = F.relu(F.linear(fg.tensor(x), fg.tensor(w), fg.tensor(b))).numpy()
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[:, 0]).all()
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


@pytest.mark.parametrize("lead", [(64,), (4, 16)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_relu_graph_is_the_two_ops(core, lead, bias):
    ops_linear, _ = core
    x = fg.tensor(_data(lead + (32,), 15), requires_grad=True)
    w = fg.tensor(_data((48, 32), 16), requires_grad=True)
    b = fg.tensor(_data(48, 17), requires_grad=True) if bias else None
    assert _names(ops_linear.linear_relu(x, w, b)) == _names(F.relu(F.linear(x, w, b)))
    assert _names(ops_linear.linear_relu(x, w, b))[0] == "ReluBackward0"


def test_linear_relu_double_backward(core):
    ops_linear, blas = core
    blas.set_split_macs(1)
    x0, w0, b0 = _data((40, 20), 18), _data((30, 20), 19), _data(30, 20)
    res = []
    for fn in (ops_linear.linear_relu, _unfused):
        x = fg.tensor(x0, requires_grad=True)
        w = fg.tensor(w0, requires_grad=True)
        b = fg.tensor(b0, requires_grad=True)
        y = fn(x, w, b)
        gx, = fg.autograd.grad((y * y).sum(), x, create_graph=True)
        gx.sum().backward()
        res.append([gx.detach().numpy(), w.grad.numpy(), b.grad.numpy()])
    for a, e in zip(*res):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)


def test_linear_relu_hook_and_inplace_check(core):
    ops_linear, _ = core
    x = fg.tensor(_data((64, 32), 21), requires_grad=True)
    w = fg.tensor(_data((48, 32), 22), requires_grad=True)
    y = ops_linear.linear_relu(x, w, None)
    seen = []
    y.register_hook(lambda g: seen.append(g.shape) or g * 2)
    y.sum().backward()
    assert seen == [(64, 48)]
    gx = x.grad.numpy().copy()
    x.grad = None
    F.relu(F.linear(x, w, None)).sum().backward()
    np.testing.assert_array_equal(gx, 2 * x.grad.numpy())     # the hook's doubled gradient
    y3 = ops_linear.linear_relu(x, w, None)
    y3.add_(1)                              # the saved result changed: backward must refuse
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y3.sum().backward()


def test_linear_relu_no_grad_mode(core):
    ops_linear, _ = core
    x = fg.tensor(_data((64, 32), 23), requires_grad=True)
    w = fg.tensor(_data((48, 32), 24), requires_grad=True)
    with fg.no_grad():
        y = ops_linear.linear_relu(x, w, None)
    assert not y.requires_grad and y.grad_fn is None
    assert (y.numpy() >= 0).all()


# --- bias gradients summed beside the backward's products ------------------------------------

@pytest.mark.parametrize("lead,k,n", [((64,), 32, 48), ((4, 16), 32, 40), ((3,), 4, 5),
                                      ((33,), 17, 65)])
@pytest.mark.parametrize("rg", [(True, True, True), (False, True, True), (True, False, True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bias_grad_same_on_every_path(core, lead, k, n, rg, dtype):
    """The bias gradient is the rows' sum in row order, whether summed alone or beside a
    product, split or not, on one thread or two."""
    _, blas = core
    x, w, b = _data(lead + (k,), 25, dtype), _data((n, k), 26, dtype), _data(n, 27, dtype)
    g = _data(lead + (n,), 28, dtype)
    want = np.zeros(n, dtype)
    for row in g.reshape(-1, n):             # the order the column-sum loop adds in
        want = want + row
    results = []
    for split in (1 << 40, 1):
        blas.set_split_macs(split)
        for threads in (1, 2):
            fg.set_num_threads(threads)
            results.append(_run(F.linear, x, w, b, g, rg))
    for r in results:
        np.testing.assert_array_equal(r[3], want)
        for a, e in zip(r[1:3], results[0][1:3]):
            assert (a is None) == (e is None)


def test_bias_grad_finite_differences(core):
    _, blas = core
    blas.set_split_macs(1)
    fg.set_num_threads(2)
    x, w, b = _data((2, 20, 12), 29), _data((16, 12), 30), _data(16, 31)
    check_grad(lambda x, w, b: F.linear(x, w, b), [x, w, b])


def test_addmm_bias_grad_with_beta(core):
    _, blas = core
    blas.set_split_macs(1)
    fg.set_num_threads(2)
    c, a, m = _data(24, 32), _data((40, 16), 33), _data((16, 24), 34)
    check_grad(lambda c, a, m: fg.addmm(c, a, m, beta=0.5, alpha=2.0), [c, a, m])


# --- the transformer layers' feed-forward block --------------------------------------------

def _layer(activation, seed=0):
    fg.manual_seed(seed)
    return fg.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True,
                                         activation=activation, dtype=fg.float64)


def _step(layer, x):
    xt = fg.tensor(x, requires_grad=True)
    out = layer(xt)
    out.backward(fg.tensor(np.cos(np.arange(out.numel())).reshape(tuple(out.shape))))
    return [out.detach().numpy()] + [xt.grad.numpy()] + [p.grad.numpy() for p in
                                                         layer.parameters()]


@pytest.mark.parametrize("activation", ["relu", F.relu])
def test_encoder_layer_relu_matches_a_plain_function(activation):
    """The fused feed-forward gives what relu given as an arbitrary callable (never fused)
    gives."""
    x = _data((3, 5, 16), 35)
    fused = _step(_layer(activation), x)
    plain = _step(_layer(lambda t: F.relu(t)), x)
    for a, e in zip(fused, plain):
        np.testing.assert_array_equal(a, e)


def test_encoder_layer_hook_on_linear1_sees_the_pre_activation():
    x = _data((3, 5, 16), 36)
    layer = _layer("relu")
    seen = []
    layer.linear1.register_forward_hook(lambda m, args, out: seen.append(out.detach().numpy()))
    fused = _step(layer, x)
    assert len(seen) == 1 and (seen[0] < 0).any()
    plain = _step(_layer(lambda t: F.relu(t)), x)
    for a, e in zip(fused, plain):
        np.testing.assert_array_equal(a, e)


def test_encoder_layer_subclassed_linear1_is_called():
    calls = []

    class Counting(fg.nn.Linear):
        def forward(self, input):
            calls.append(1)
            return super().forward(input)

    layer = _layer("relu")
    old = layer.linear1
    layer.linear1 = Counting(16, 32, dtype=fg.float64)
    layer.linear1.load_state_dict(old.state_dict())
    _step(layer, _data((2, 4, 16), 37))
    assert calls == [1]
