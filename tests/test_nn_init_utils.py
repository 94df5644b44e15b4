"""nn.init (distributions, bounds, gains, reproducibility) and nn.utils (clipping, vector
conversion) against closed forms and PyTorch."""
import math

import numpy as np
import pytest

from _backend import fg

nn = fg.nn
init = nn.init


def test_calculate_gain():
    assert init.calculate_gain("relu") == math.sqrt(2.0)
    assert init.calculate_gain("tanh") == 5.0 / 3
    assert init.calculate_gain("linear") == 1
    assert init.calculate_gain("leaky_relu", 0.2) == math.sqrt(2.0 / 1.04)
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("nope")


@pytest.mark.parametrize("fn, kw, bound", [
    (init.uniform_, {"a": -0.3, "b": 0.2}, (-0.3, 0.2)),
    (init.xavier_uniform_, {}, (-math.sqrt(6 / (40 + 30)),) * 2),
    (init.kaiming_uniform_, {"a": math.sqrt(5)}, (-1 / math.sqrt(40),) * 2),
])
def test_uniform_bounds(fn, kw, bound):
    t = fg.empty(30, 40)
    fn(t, **kw)
    lo, hi = bound[0], abs(bound[1])
    a = t.numpy()
    assert a.min() >= lo - 1e-7 and a.max() <= hi + 1e-7
    assert a.max() > hi - 0.1 * (hi - lo)


@pytest.mark.parametrize("fn, kw, std", [
    (init.normal_, {"mean": 0.0, "std": 0.5}, 0.5),
    (init.xavier_normal_, {}, math.sqrt(2 / (200 + 100))),
    (init.kaiming_normal_, {"nonlinearity": "relu"}, math.sqrt(2) / math.sqrt(200)),
])
def test_normal_std(fn, kw, std):
    t = fg.empty(100, 200)
    fn(t, **kw)
    assert abs(t.numpy().std() - std) < 0.05 * std


def test_constants_and_inplace_on_parameter():
    p = nn.Parameter(fg.empty(2, 3))
    assert init.zeros_(p) is p and p.requires_grad and p.is_leaf
    assert float(p.abs().sum()) == 0
    init.ones_(p)
    init.constant_(p, 2.5)
    assert np.all(p.detach().numpy() == 2.5)
    assert p.grad_fn is None


def test_init_reproducible_with_manual_seed():
    fg.manual_seed(3)
    a = nn.Linear(4, 4).weight.detach().numpy().copy()
    fg.manual_seed(3)
    b = nn.Linear(4, 4).weight.detach().numpy()
    np.testing.assert_array_equal(a, b)


def _params(rng, torch=None):
    arrs = [rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(5).astype(np.float32)]
    grads = [rng.standard_normal(a.shape).astype(np.float32) * 3 for a in arrs]
    out = []
    for lib in [fg] + ([torch] if torch else []):
        ps = [lib.tensor(a, requires_grad=True) for a in arrs]
        for p, g in zip(ps, grads):
            p.grad = lib.tensor(g)
        out.append(ps)
    return out


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1000.0])
def test_clip_grad_norm(rng, norm_type, max_norm):
    pf, = _params(rng)
    gs = [p.grad.numpy().copy() for p in pf]
    flat = np.concatenate([g.ravel() for g in gs]).astype(np.float64)
    expected = np.abs(flat).max() if norm_type == math.inf else \
        (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
    total = nn.utils.clip_grad_norm_(pf, max_norm, norm_type=norm_type)
    assert total.dim() == 0
    assert abs(total.item() - expected) < 1e-4 * expected
    coef = min(1.0, max_norm / (expected + 1e-6))
    for p, g in zip(pf, gs):
        np.testing.assert_allclose(p.grad.numpy(), g * coef, rtol=1e-5)


def test_clip_grad_norm_vs_torch(rng):
    torch = pytest.importorskip("torch")
    pf, pt = _params(rng, torch)
    tf = nn.utils.clip_grad_norm_(pf, 1.0)
    tt = torch.nn.utils.clip_grad_norm_(pt, 1.0)
    assert abs(tf.item() - tt.item()) < 1e-5 * tt.item()
    for a, b in zip(pf, pt):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-5)


def test_clip_grad_norm_nonfinite():
    p = fg.zeros(2, requires_grad=True)
    p.grad = fg.tensor([float("nan"), 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    assert math.isnan(nn.utils.clip_grad_norm_([p], 1.0).item())


def test_clip_grad_value(rng):
    pf, = _params(rng)
    gs = [p.grad.numpy().copy() for p in pf]
    nn.utils.clip_grad_value_(pf, 0.5)
    for p, g in zip(pf, gs):
        np.testing.assert_allclose(p.grad.numpy(), np.clip(g, -0.5, 0.5))


def test_parameters_vector_round_trip():
    m = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    v = nn.utils.parameters_to_vector(m.parameters())
    assert tuple(v.shape) == (3 * 2 + 2 + 2 + 1,)
    expected = np.concatenate([p.detach().numpy().ravel() for p in m.parameters()])
    np.testing.assert_array_equal(v.detach().numpy(), expected)
    nn.utils.vector_to_parameters(fg.arange(11).float(), m.parameters())
    np.testing.assert_array_equal(m[0].weight.detach().numpy(), np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(m[1].bias.detach().numpy(), [10])
    with pytest.raises(RuntimeError):
        nn.utils.vector_to_parameters(fg.zeros(5), m.parameters())
