"""Optimizers: 100-step trajectories vs a plain NumPy reference (always) and vs torch.optim
(where installed), state_dict round trips, param groups, repr, and errors.

Every trajectory minimises a fixed separable quadratic: the gradient of parameter i at step t is
A_i * (p - C_i) + 0.1 * sin(t), computed in NumPy from the current values and assigned to .grad,
so the optimizers are compared on identical gradients (no forward/backward in the loop).
"""
import copy
import math
import warnings

import numpy as np
import pytest

from _backend import REFERENCE, fg

SHAPES = [(5, 3), (7,), (), (16, 33)]

CASES = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.3)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), amsgrad=True, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, maximize=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, amsgrad=True, weight_decay=0.5)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.001, alpha=0.9, eps=1e-6)),
    ("RMSprop", dict(lr=0.001, momentum=0.9, centered=True, weight_decay=0.1, maximize=True)),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}" for n, kw in CASES]


def _problem(seed=1):
    rng = np.random.default_rng(seed)
    p0 = [rng.standard_normal(s) for s in SHAPES]
    a = [rng.uniform(0.5, 2.0, s) for s in SHAPES]
    c = [rng.standard_normal(s) for s in SHAPES]
    return p0, a, c


def _grad(a, c, p, t):
    return np.asarray(a * (p - c) + 0.1 * math.sin(t))


def _run(lib, name, kw, dtype, steps=100, seed=1):
    """Parameter values after `steps` steps of optimizer `name` from library `lib`."""
    p0, a, c = _problem(seed)
    ps = [lib.tensor(x.astype(dtype), requires_grad=True) for x in p0]
    opt = getattr(lib.optim, name)(ps, **kw)
    for t in range(steps):
        opt.zero_grad()
        for p, ai, ci in zip(ps, a, c):
            p.grad = lib.from_numpy(_grad(ai, ci, p.detach().numpy(), t).astype(dtype))
        opt.step()
    return [p.detach().numpy().astype(np.float64) for p in ps]


# --- the NumPy reference: textbook formulas in float64 ----------------------------------------

def _reference(name, kw, steps=100, seed=1):
    p0, a, c = _problem(seed)
    defaults = {
        "SGD": dict(lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False),
        "Adam": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False),
        "AdamW": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False),
        "Adagrad": dict(lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                        eps=1e-10),
        "RMSprop": dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                        centered=False),
    }[name]
    o = {**defaults, "maximize": False, **kw}
    out = []
    for p, ai, ci in zip(p0, a, c):
        p = p.copy()
        s1, s2, s3 = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
        if name == "Adagrad":
            s1 += o["initial_accumulator_value"]
        for t in range(steps):
            g = _grad(ai, ci, p, t)
            g = -g if o["maximize"] else g
            n = t + 1
            if name == "SGD":
                g = g + o["weight_decay"] * p
                if o["momentum"]:
                    s1 = g.copy() if t == 0 else o["momentum"] * s1 + (1 - o["dampening"]) * g
                    g = g + o["momentum"] * s1 if o["nesterov"] else s1
                p = p - o["lr"] * g
            elif name in ("Adam", "AdamW"):
                b1, b2 = o["betas"]
                if name == "AdamW":
                    p = p * (1 - o["lr"] * o["weight_decay"])
                else:
                    g = g + o["weight_decay"] * p
                s1 = b1 * s1 + (1 - b1) * g
                s2 = b2 * s2 + (1 - b2) * g * g
                s3 = np.maximum(s3, s2)
                v = s3 if o["amsgrad"] else s2
                p = p - o["lr"] / (1 - b1 ** n) * s1 / (np.sqrt(v / (1 - b2 ** n)) + o["eps"])
            elif name == "Adagrad":
                g = g + o["weight_decay"] * p
                s1 = s1 + g * g
                p = p - o["lr"] / (1 + t * o["lr_decay"]) * g / (np.sqrt(s1) + o["eps"])
            else:  # RMSprop
                g = g + o["weight_decay"] * p
                s1 = o["alpha"] * s1 + (1 - o["alpha"]) * g * g
                if o["centered"]:
                    s2 = o["alpha"] * s2 + (1 - o["alpha"]) * g
                    avg = np.sqrt(s1 - s2 * s2) + o["eps"]
                else:
                    avg = np.sqrt(s1) + o["eps"]
                if o["momentum"]:
                    s3 = o["momentum"] * s3 + g / avg
                    p = p - o["lr"] * s3
                else:
                    p = p - o["lr"] * g / avg
        out.append(p)
    return out


def _assert_close(got, want, rtol):
    """Elementwise |got - want| <= rtol * max|want| per tensor, and the norm error <= rtol."""
    for g, w in zip(got, want):
        scale = max(float(np.max(np.abs(w))), 1e-30)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * scale)
        assert np.linalg.norm(g - w) <= rtol * np.linalg.norm(w) + 1e-300


@pytest.mark.parametrize("name, kw", CASES, ids=IDS)
def test_vs_numpy_reference_float64(name, kw):
    _assert_close(_run(fg, name, kw, np.float64), _reference(name, kw), rtol=1e-10)


@pytest.mark.parametrize("name, kw", CASES, ids=IDS)
def test_vs_numpy_reference_float32(name, kw):
    _assert_close(_run(fg, name, kw, np.float32), _reference(name, kw), rtol=2e-5)


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-6), (np.float64, 1e-13)])
@pytest.mark.parametrize("name, kw", CASES, ids=IDS)
def test_vs_torch(name, kw, dtype, rtol):
    torch = pytest.importorskip("torch")
    import fastgrad
    _assert_close(_run(fastgrad, name, kw, dtype), _run(torch, name, kw, dtype), rtol=rtol)


# --- state dicts ------------------------------------------------------------------------------

@pytest.mark.parametrize("name, kw", CASES, ids=IDS)
def test_state_dict_round_trip_continues_identically(name, kw):
    p0, a, c = _problem(3)

    def make(values):
        ps = [fg.tensor(x, requires_grad=True) for x in values]
        return ps, getattr(fg.optim, name)(ps, **kw)

    def train(ps, opt, steps, t0):
        for t in range(t0, t0 + steps):
            opt.zero_grad()
            for p, ai, ci in zip(ps, a, c):
                p.grad = fg.from_numpy(_grad(ai, ci, p.detach().numpy(), t))
            opt.step()

    ps, opt = make(p0)
    train(ps, opt, 30, 0)
    saved = copy.deepcopy(opt.state_dict())
    values = [p.detach().numpy().copy() for p in ps]
    train(ps, opt, 30, 30)

    ps2, opt2 = make(values)
    opt2.load_state_dict(saved)
    train(ps2, opt2, 30, 30)
    for p, q in zip(ps, ps2):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())


def test_state_dict_format_matches_torch():
    torch = pytest.importorskip("torch")
    import fastgrad
    for name, kw in CASES:
        sds = []
        for lib in (fastgrad, torch):
            ps = [lib.zeros(2, 3, requires_grad=True), lib.zeros(4, requires_grad=True)]
            opt = getattr(lib.optim, name)([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.5}],
                                           **kw)
            for p in ps:
                p.grad = lib.ones_like(p)
            opt.step()
            sds.append(opt.state_dict())
        mine, theirs = sds
        assert mine["param_groups"] == theirs["param_groups"], name
        assert sorted(mine["state"]) == sorted(theirs["state"]), name
        for i in mine["state"]:
            assert sorted(mine["state"][i]) == sorted(theirs["state"][i]), name
            for k, v in mine["state"][i].items():
                w = theirs["state"][i][k]
                assert tuple(v.shape) == tuple(w.shape), (name, k)
                assert str(v.dtype) == str(w.dtype), (name, k)
                np.testing.assert_allclose(v.numpy(), w.numpy(), rtol=1e-6)


def test_load_state_dict_errors():
    ps = [fg.zeros(3, requires_grad=True), fg.zeros(2, requires_grad=True)]
    opt = fg.optim.Adam(ps)
    other = fg.optim.Adam([fg.zeros(3, requires_grad=True)])
    with pytest.raises(ValueError, match="parameter group"):
        opt.load_state_dict(other.state_dict())
    two = fg.optim.Adam([{"params": ps[:1]}, {"params": ps[1:]}])
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt.load_state_dict(two.state_dict())


def test_load_state_dict_restores_options_and_keeps_params():
    p = fg.zeros(3, requires_grad=True)
    opt = fg.optim.SGD([p], lr=0.1, momentum=0.9)
    q = fg.zeros(3, requires_grad=True)
    opt2 = fg.optim.SGD([q], lr=0.5)
    opt2.load_state_dict(opt.state_dict())
    assert opt2.param_groups[0]["lr"] == 0.1
    assert opt2.param_groups[0]["momentum"] == 0.9
    assert opt2.param_groups[0]["params"][0] is q


# --- interface --------------------------------------------------------------------------------

def test_repr_matches_pytorch():
    p = fg.zeros(2, requires_grad=True)
    assert repr(fg.optim.SGD([p], lr=0.1, momentum=0.9)) == (
        "SGD (\nParameter Group 0\n    dampening: 0\n    differentiable: False\n"
        "    foreach: None\n    fused: None\n    lr: 0.1\n    maximize: False\n"
        "    momentum: 0.9\n    nesterov: False\n    weight_decay: 0\n)")


def test_repr_vs_torch_every_optimizer():
    torch = pytest.importorskip("torch")
    import fastgrad
    for name, kw in CASES:
        reprs = []
        for lib in (fastgrad, torch):
            ps = [lib.zeros(2, requires_grad=True), lib.zeros(3, requires_grad=True)]
            reprs.append(repr(getattr(lib.optim, name)(
                [{"params": ps[:1]}, {"params": ps[1:], "lr": 0.25}], **kw)))
        assert reprs[0] == reprs[1], name


def test_defaults_match_pytorch():
    p = fg.zeros(2, requires_grad=True)
    assert fg.optim.SGD([p]).defaults["lr"] == 1e-3
    assert fg.optim.AdamW([p]).defaults["weight_decay"] == 1e-2
    d = fg.optim.Adagrad([p]).defaults
    assert (d["lr"], d["eps"]) == (1e-2, 1e-10)
    d = fg.optim.RMSprop([p]).defaults
    assert (d["lr"], d["alpha"], d["eps"]) == (1e-2, 0.99, 1e-8)


def test_zero_grad_sets_none_by_default_or_zeros():
    p = fg.ones(3, requires_grad=True)
    opt = fg.optim.SGD([p], lr=0.1)
    (p * 2).sum().backward()
    opt.zero_grad()
    assert p.grad is None
    (p * 2).sum().backward()
    g = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is g
    np.testing.assert_array_equal(p.grad.numpy(), np.zeros(3, np.float32))


def test_param_groups_take_their_own_options():
    a = fg.ones(2, requires_grad=True)
    b = fg.ones(2, requires_grad=True)
    opt = fg.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["lr"] == 0.5
    assert opt.param_groups[1]["momentum"] == 0
    a.grad = fg.ones(2)
    b.grad = fg.ones(2)
    opt.step()
    np.testing.assert_allclose(a.detach().numpy(), [0.9, 0.9], rtol=1e-6)
    np.testing.assert_allclose(b.detach().numpy(), [0.5, 0.5], rtol=1e-6)


def test_add_param_group():
    a = fg.ones(2, requires_grad=True)
    b = fg.ones(3, requires_grad=True)
    opt = fg.optim.Adam([a], lr=0.1)
    opt.add_param_group({"params": b, "lr": 0.01})
    assert len(opt.param_groups) == 2
    assert opt.param_groups[1]["params"] == [b] or opt.param_groups[1]["params"][0] is b
    assert opt.param_groups[1]["betas"] == (0.9, 0.999)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})


def test_adagrad_param_group_added_later_gets_state():
    a = fg.ones(2, requires_grad=True)
    b = fg.ones(2, requires_grad=True)
    opt = fg.optim.Adagrad([a], lr=0.1)
    opt.add_param_group({"params": [b]})
    a.grad = fg.ones(2)
    b.grad = fg.ones(2)
    opt.step()
    np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy())


def test_params_without_grad_are_skipped():
    a = fg.ones(2, requires_grad=True)
    b = fg.ones(2, requires_grad=True)
    opt = fg.optim.Adam([a, b], lr=0.1)
    a.grad = fg.ones(2)
    opt.step()
    np.testing.assert_array_equal(b.detach().numpy(), [1, 1])
    assert len(opt.state[b]) == 0 and len(opt.state[a]) > 0


def test_step_records_nothing_and_bumps_version():
    p = fg.ones(3, requires_grad=True)
    opt = fg.optim.SGD([p], lr=0.1, momentum=0.9)
    v0 = p._version
    p.grad = fg.ones(3)
    opt.step()
    assert p._version > v0
    assert p.is_leaf and p.grad_fn is None and p.requires_grad
    assert fg.is_grad_enabled()


def test_step_on_a_saved_parameter_invalidates_its_graph():
    p = fg.ones(3, requires_grad=True)
    opt = fg.optim.SGD([p], lr=0.1)
    loss = (p * p).sum()
    p.grad = fg.ones(3)
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_closure_runs_with_grad_and_returns_loss():
    p = fg.tensor([3.0], requires_grad=True)
    opt = fg.optim.SGD([p], lr=0.25)
    seen = []

    def closure():
        opt.zero_grad()
        seen.append(fg.is_grad_enabled())
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert seen == [True]
    assert loss.item() == pytest.approx(9.0)
    assert p.detach().numpy()[0] == pytest.approx(3.0 - 0.25 * 6.0)


def test_noncontiguous_parameter():
    if REFERENCE:
        pytest.skip("fastgrad-specific layout")
    arr = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    p = fg.from_numpy(arr).requires_grad_()
    opt = fg.optim.Adam([p], lr=0.1)
    p.grad = fg.ones(2, 3)
    opt.step()
    want = np.arange(6, dtype=np.float32).reshape(2, 3) - 0.1
    np.testing.assert_allclose(p.detach().numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(arr, want, rtol=1e-6)          # written through to the storage


def test_step_counts_and_buffers_in_state():
    p = fg.ones(2, requires_grad=True)
    opt = fg.optim.Adam([p], lr=0.1, amsgrad=True)
    for _ in range(3):
        p.grad = fg.ones(2)
        opt.step()
    st = opt.state[p]
    assert float(st["step"]) == 3.0
    assert st["step"].dtype == fg.float32 and st["step"].dim() == 0
    assert sorted(st) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]


def test_momentum_free_sgd_keeps_no_state():
    p = fg.ones(2, requires_grad=True)
    opt = fg.optim.SGD([p], lr=0.1)
    p.grad = fg.ones(2)
    opt.step()
    assert opt.state_dict()["state"] == {}


# --- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "Adagrad", "RMSprop"])
def test_invalid_learning_rate(name):
    p = fg.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="Invalid learning rate: -1.0"):
        getattr(fg.optim, name)([p], lr=-1.0)


@pytest.mark.parametrize("kw, msg", [
    (dict(momentum=-0.1), "Invalid momentum value: -0.1"),
    (dict(weight_decay=-1), "Invalid weight_decay value: -1"),
    (dict(nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
])
def test_sgd_invalid_options(kw, msg):
    with pytest.raises(ValueError, match=msg):
        fg.optim.SGD([fg.zeros(2, requires_grad=True)], lr=0.1, **kw)


def test_adam_invalid_options():
    p = fg.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 0: 1.0"):
        fg.optim.Adam([p], betas=(1.0, 0.999))
    with pytest.raises(ValueError, match="Invalid epsilon value: -1"):
        fg.optim.Adam([p], eps=-1)


def test_non_leaf_parameter():
    x = fg.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        fg.optim.SGD([x * 2], lr=0.1)


def test_bad_params_arguments():
    p = fg.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="empty parameter list"):
        fg.optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors or dicts"):
        fg.optim.SGD(p, lr=0.1)
    with pytest.raises(TypeError, match="ordered collections"):
        fg.optim.SGD([{"params": {p}}], lr=0.1)
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        fg.optim.SGD([p, 1.0], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        fg.optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fg.optim.SGD([p, p], lr=0.1)
    assert any("duplicate parameters" in str(x.message) for x in w)


def test_integer_parameter_is_rejected_at_step():
    if REFERENCE:
        pytest.skip("fastgrad-specific message")
    from fastgrad._core import optim_kernels
    p = fg.zeros(2, dtype=fg.int64)
    with pytest.raises(TypeError, match="float32 or float64"):
        optim_kernels.sgd_update(p, p, None, 0.1, 0, 0, 0, False, False, False)
