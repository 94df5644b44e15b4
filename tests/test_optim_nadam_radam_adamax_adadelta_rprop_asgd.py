"""NAdam, RAdam, Adamax, Adadelta, Rprop, ASGD: trajectories against torch.optim (where
installed) and against textbook float64 formulas in NumPy (always), one and two threads, param
groups, lr changed between steps, gradients missing on some steps, state dicts (pickled, and
saved by torch), and torch's constructor errors.

Every parameter's gradient at step t is A * (p - C) + 0.1 * sin(t), computed in NumPy from the
current values and assigned to .grad, so both libraries see the same gradients.
"""
import math
import pickle

import numpy as np
import pytest

from _backend import REFERENCE, fg

PAR_MIN = 65536                      # kernels.pxd: the parallel driver runs from 2 * PAR_MIN
SHAPES = [(5, 3), (7,), (), (0,), (1,), (2 * PAR_MIN + 5,)]
SKIP = 1                             # SHAPES[SKIP] has no gradient on every third step

CASES = [
    ("NAdam", dict()),
    ("NAdam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, momentum_decay=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("RAdam", dict()),
    ("RAdam", dict(lr=0.01, betas=(0.3, 0.9), weight_decay=0.1)),
    ("RAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("Adamax", dict()),
    ("Adamax", dict(lr=0.01, betas=(0.3, 0.9), eps=1e-3, weight_decay=0.1, maximize=True)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.5, eps=1e-4, weight_decay=0.1, maximize=True)),
    ("Rprop", dict()),
    ("Rprop", dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-3, 0.2), maximize=True)),
    ("ASGD", dict()),
    ("ASGD", dict(lr=0.05, lambd=0.01, alpha=0.5, t0=5, weight_decay=0.1, maximize=True)),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}" for n, kw in CASES]
STEPS = 24


def _problem(seed=1):
    rng = np.random.default_rng(seed)
    p0 = [rng.standard_normal(s) for s in SHAPES]
    a = [rng.uniform(0.5, 2.0, s) for s in SHAPES]
    c = [rng.standard_normal(s) for s in SHAPES]
    return p0, a, c


def _grad(a, c, p, t):
    return np.asarray(a * (p - c) + 0.1 * math.sin(t))


def _has_grad(i, t):
    return not (i == SKIP and t % 3 == 0)


def _make(lib, name, kw, values, dtype):
    """Two parameter groups (the first three parameters with lr halved) of `values`."""
    ps = [lib.tensor(np.asarray(x, dtype), requires_grad=True) for x in values]
    lr = kw.get("lr", _DEFAULTS[name]["lr"])
    opt = getattr(lib.optim, name)([{"params": ps[:3], "lr": lr / 2}, {"params": ps[3:]}], **kw)
    return ps, opt


def _train(lib, ps, opt, a, c, t0, steps, dtype):
    for t in range(t0, t0 + steps):
        if t == 10:                                      # a schedule changes the rate
            for group in opt.param_groups:
                group["lr"] = group["lr"] * 0.7
        opt.zero_grad()
        for i, (p, ai, ci) in enumerate(zip(ps, a, c)):
            if _has_grad(i, t):
                p.grad = lib.from_numpy(_grad(ai, ci, p.detach().numpy(), t).astype(dtype))
        opt.step()


def _run(lib, name, kw, dtype, steps=STEPS):
    p0, a, c = _problem()
    ps, opt = _make(lib, name, kw, p0, dtype)
    _train(lib, ps, opt, a, c, 0, steps, dtype)
    return [p.detach().numpy().astype(np.float64) for p in ps]


def _assert_close(got, want, rtol):
    for g, w in zip(got, want):
        scale = max(float(np.max(np.abs(w), initial=0.0)), 1e-30)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * scale)


# --- the NumPy reference: textbook formulas in float64 ----------------------------------------

_DEFAULTS = {
    "NAdam": dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
                  decoupled_weight_decay=False),
    "RAdam": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                  decoupled_weight_decay=False),
    "Adamax": dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0),
    "Adadelta": dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0),
    "Rprop": dict(lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50)),
    "ASGD": dict(lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0),
}


def _reference(name, kw, steps=STEPS):
    p0, a, c = _problem()
    o = {**_DEFAULTS[name], "maximize": False, **kw}
    out = []
    for i, (p, ai, ci) in enumerate(zip(p0, a, c)):
        lr = o["lr"] / 2 if i < 3 else o["lr"]
        p, n = p.copy(), 0
        s1, s2 = np.zeros_like(p), np.zeros_like(p)
        mu_product, eta, mu = 1.0, float(np.float32(lr)), 1.0   # torch keeps them in float32
        if name == "Rprop":
            s2 = np.full_like(p, lr)
        for t in range(steps):
            if t == 10:
                lr *= 0.7
            if not _has_grad(i, t):
                continue
            g = _grad(ai, ci, p, t)
            g = -g if o["maximize"] else g
            n += 1
            wd = o.get("weight_decay", 0)
            if o.get("decoupled_weight_decay"):
                p = p * (1 - lr * wd)
            elif name != "Rprop":
                g = g + wd * p
            if name in ("NAdam", "RAdam", "Adamax"):
                b1, b2 = o["betas"]
                s1 = b1 * s1 + (1 - b1) * g
            if name == "NAdam":
                s2 = b2 * s2 + (1 - b2) * g * g
                mu_t = b1 * (1 - 0.5 * 0.96 ** (n * o["momentum_decay"]))
                mu_n = b1 * (1 - 0.5 * 0.96 ** ((n + 1) * o["momentum_decay"]))
                mu_product = float(np.float32(mu_product) * np.float32(mu_t))   # float32 state
                d = np.sqrt(s2 / (1 - b2 ** n)) + o["eps"]
                p = (p - lr * (1 - mu_t) / (1 - mu_product) * g / d
                     - lr * mu_n / (1 - mu_product * mu_n) * s1 / d)
            elif name == "RAdam":
                s2 = b2 * s2 + (1 - b2) * g * g
                rho_inf = 2 / (1 - b2) - 1
                rho = rho_inf - 2 * n * b2 ** n / (1 - b2 ** n)
                step = lr * s1 / (1 - b1 ** n)
                if rho > 5:
                    r = math.sqrt((rho - 4) * (rho - 2) * rho_inf
                                  / ((rho_inf - 4) * (rho_inf - 2) * rho))
                    step = step * r * math.sqrt(1 - b2 ** n) / (np.sqrt(s2) + o["eps"])
                p = p - step
            elif name == "Adamax":
                s2 = np.maximum(b2 * s2, np.abs(g) + o["eps"])
                p = p - lr / (1 - b1 ** n) * s1 / s2
            elif name == "Adadelta":
                rho = o["rho"]
                s1 = rho * s1 + (1 - rho) * g * g
                d = np.sqrt(s2 + o["eps"]) / np.sqrt(s1 + o["eps"]) * g
                s2 = rho * s2 + (1 - rho) * d * d
                p = p - lr * d
            elif name == "Rprop":
                (em, ep), (lo, hi) = o["etas"], o["step_sizes"]
                f = np.where(g * s1 > 0, ep, np.where(g * s1 < 0, em, 1.0))
                s2 = np.clip(s2 * f, lo, hi)
                g = np.where(f == em, 0.0, g)
                p = p - np.sign(g) * s2
                s1 = g
            else:                                        # ASGD
                p = p * (1 - o["lambd"] * eta) - eta * g
                s1 = p.copy() if mu == 1 else s1 + (p - s1) * mu
                eta = float(np.float32(lr / (1 + o["lambd"] * lr * n) ** o["alpha"]))
                mu = float(np.float32(1 / max(1, n - o["t0"])))
        out.append(p)
    return out


@pytest.mark.parametrize("name, kw", CASES, ids=IDS)
def test_vs_numpy_reference_float64(name, kw):
    _assert_close(_run(fg, name, kw, np.float64), _reference(name, kw), rtol=1e-10)


# Rprop is left out: in float32 a sign test near zero goes the other way for a few elements.
@pytest.mark.parametrize("name, kw", [c for c in CASES if c[0] != "Rprop"],
                         ids=[i for i in IDS if not i.startswith("Rprop")])
def test_vs_numpy_reference_float32(name, kw):
    rtol = 5e-5
    _assert_close(_run(fg, name, kw, np.float32), _reference(name, kw), rtol=rtol)


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-6), (np.float64, 1e-13)],
                         ids=["f32", "f64"])
@pytest.mark.parametrize("name, kw", CASES, ids=IDS)
def test_vs_torch(name, kw, dtype, rtol):
    torch = pytest.importorskip("torch")
    import fastgrad
    _assert_close(_run(fastgrad, name, kw, dtype), _run(torch, name, kw, dtype), rtol=rtol)


@pytest.mark.skipif(REFERENCE, reason="fastgrad's thread setting")
@pytest.mark.parametrize("name, kw", CASES, ids=IDS)
def test_one_and_two_threads_give_identical_results(name, kw):
    before, runs = fg.get_num_threads(), []
    try:
        for threads in (1, 2):
            fg.set_num_threads(threads)
            runs.append(_run(fg, name, kw, np.float32, steps=6))
    finally:
        fg.set_num_threads(before)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_first_steps_by_hand():
    """Closed forms of step 1 (m = 0.1 g, v = 0.001 g² etc.) for g = 2, p = 1, defaults."""
    expect = {
        # NAdam: mu1 = 0.9 (1 - 0.5 * 0.96^0.004), d = sqrt(4) + 1e-8
        "NAdam": None,
        "RAdam": 1 - 1e-3 * 2,                       # rho_1 = 1 < 5: p -= lr * m / (1 - b1)
        "Adamax": 1 - 2e-3 * 0.2 / 0.1 / (2 + 1e-8),
        "Adadelta": 1 - math.sqrt(1e-6) / math.sqrt(0.4 + 1e-6) * 2,
        "Rprop": 1 - 0.01,
    }
    eta = float(np.float32(1e-2))                   # eta is a float32 state
    expect["ASGD"] = 1 * (1 - 1e-4 * eta) - eta * 2
    mu1 = 0.9 * (1 - 0.5 * 0.96 ** 0.004)
    mu2 = 0.9 * (1 - 0.5 * 0.96 ** 0.008)
    mp = float(np.float32(mu1))                     # mu_product is a float32 state
    expect["NAdam"] = (1 - 2e-3 * (1 - mu1) / (1 - mp) * 2 / (2 + 1e-8)
                       - 2e-3 * mu2 / (1 - mp * mu2) * 0.2 / (2 + 1e-8))
    for name, want in expect.items():
        p = fg.tensor(np.ones(3), requires_grad=True)
        opt = getattr(fg.optim, name)([p])
        p.grad = fg.tensor(np.full(3, 2.0))
        opt.step()
        np.testing.assert_allclose(p.detach().numpy(), want, rtol=1e-14, err_msg=name)


# --- state --------------------------------------------------------------------------------------

STATE_NAMES = {
    "NAdam": {"step", "mu_product", "exp_avg", "exp_avg_sq"},
    "RAdam": {"step", "exp_avg", "exp_avg_sq"},
    "Adamax": {"step", "exp_avg", "exp_inf"},
    "Adadelta": {"step", "square_avg", "acc_delta"},
    "Rprop": {"step", "prev", "step_size"},
    "ASGD": {"step", "eta", "mu", "ax"},
}


@pytest.mark.parametrize("name, kw", CASES, ids=IDS)
def test_state_names_and_pickled_state_dict_continue_identically(name, kw):
    """In float32: loading gives every state tensor but 'step' the parameter's dtype (as torch
    does), so float64 parameters would turn NAdam's and ASGD's float32 scalars into float64
    ones and round them differently afterwards."""
    p0, a, c = _problem(3)
    ps, opt = _make(fg, name, kw, p0, np.float32)
    _train(fg, ps, opt, a, c, 0, 12, np.float32)
    assert set(opt.state[ps[0]]) == STATE_NAMES[name]
    assert float(opt.state[ps[0]]["step"]) == 12
    saved = pickle.loads(pickle.dumps(opt.state_dict()))
    values = [p.detach().numpy().copy() for p in ps]
    _train(fg, ps, opt, a, c, 12, 12, np.float32)
    ps2, opt2 = _make(fg, name, kw, values, np.float32)
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["lr"] == saved["param_groups"][0]["lr"]
    _train(fg, ps2, opt2, a, c, 12, 12, np.float32)
    for p, q in zip(ps, ps2):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-6), (np.float64, 1e-13)],
                         ids=["f32", "f64"])
@pytest.mark.parametrize("name, kw", CASES, ids=IDS)
def test_state_dict_saved_by_torch_continues_as_in_torch(name, kw, dtype, rtol):
    torch = pytest.importorskip("torch")
    import fastgrad
    p0, a, c = _problem(4)
    tps, topt = _make(torch, name, kw, p0, dtype)
    _train(torch, tps, topt, a, c, 0, 12, dtype)
    exported = topt.state_dict()
    exported = {"param_groups": exported["param_groups"],
                "state": {k: {n: fastgrad.from_numpy(v.numpy().copy()) for n, v in s.items()}
                          for k, s in exported["state"].items()}}
    fps, fopt = _make(fastgrad, name, kw, [p.detach().numpy() for p in tps], dtype)
    fopt.load_state_dict(exported)
    _train(torch, tps, topt, a, c, 12, 12, dtype)
    _train(fastgrad, fps, fopt, a, c, 12, 12, dtype)
    _assert_close([p.detach().numpy().astype(np.float64) for p in fps],
                  [p.detach().numpy().astype(np.float64) for p in tps], rtol=rtol)


@pytest.mark.parametrize("name", list(_DEFAULTS))
def test_defaults_match_pytorch(name):
    torch = pytest.importorskip("torch")
    import fastgrad
    p = fastgrad.zeros(2, requires_grad=True)
    q = torch.zeros(2, requires_grad=True)
    assert getattr(fastgrad.optim, name)([p]).defaults == getattr(torch.optim, name)([q]).defaults


# --- constructor errors -----------------------------------------------------------------------

BAD = [
    ("NAdam", dict(lr=-1), "Invalid learning rate: -1"),
    ("NAdam", dict(eps=-1), "Invalid epsilon value: -1"),
    ("NAdam", dict(betas=(1.0, 0.9)), "Invalid beta parameter at index 0: 1.0"),
    ("NAdam", dict(betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    ("NAdam", dict(weight_decay=-1), "Invalid weight_decay value: -1"),
    ("NAdam", dict(momentum_decay=-1), "Invalid momentum_decay value: -1"),
    ("RAdam", dict(lr=-0.5), "Invalid learning rate: -0.5"),
    ("RAdam", dict(betas=(0.9, 1.0)), "Invalid beta parameter at index 1: 1.0"),
    ("RAdam", dict(weight_decay=-2), "Invalid weight_decay value: -2"),
    ("Adamax", dict(eps=-1e-8), "Invalid epsilon value: -1e-08"),
    ("Adamax", dict(betas=(-0.1, 0.9)), "Invalid beta parameter at index 0: -0.1"),
    ("Adadelta", dict(lr=-1), "Invalid learning rate: -1"),
    ("Adadelta", dict(rho=1.5), "Invalid rho value: 1.5"),
    ("Adadelta", dict(eps=-1), "Invalid epsilon value: -1"),
    ("Adadelta", dict(weight_decay=-1), "Invalid weight_decay value: -1"),
    ("Rprop", dict(lr=-1), "Invalid learning rate: -1"),
    ("Rprop", dict(etas=(1.2, 0.5)), "Invalid eta values: 1.2, 0.5"),
    ("ASGD", dict(lr=-1), "Invalid learning rate: -1"),
    ("ASGD", dict(weight_decay=-1), "Invalid weight_decay value: -1"),
]


@pytest.mark.parametrize("name, kw, msg", BAD)
def test_invalid_options(name, kw, msg):
    p = fg.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(".", r"\.")):
        getattr(fg.optim, name)([p], **kw)


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own limitation")
@pytest.mark.parametrize("name", list(_DEFAULTS))
def test_differentiable_is_refused(name):
    with pytest.raises(ValueError, match="differentiable=True"):
        getattr(fg.optim, name)([fg.zeros(2, requires_grad=True)], differentiable=True)


@pytest.mark.parametrize("name, kw", CASES, ids=IDS)
def test_repr_matches_pytorch(name, kw):
    torch = pytest.importorskip("torch")
    import fastgrad
    reprs = [repr(_make(lib, name, kw, [np.zeros(2), np.zeros(3)] * 2, np.float32)[1])
             for lib in (fastgrad, torch)]
    assert reprs[0] == reprs[1]


@pytest.mark.parametrize("name", ["NAdam", "ASGD"])
def test_checkpoint_with_numbers_for_scalar_states_and_without_new_options(name):
    """An older checkpoint: 'step' and the one-number states as Python floats, and no
    'maximize' / 'foreach' options; loading turns them into 0-d tensors and fills the options,
    and the run continues as it would have."""
    p0, a, c = _problem(6)
    ps, opt = _make(fg, name, {}, p0, np.float32)
    _train(fg, ps, opt, a, c, 0, 5, np.float32)
    sd = pickle.loads(pickle.dumps(opt.state_dict()))          # not the live buffers
    values = [p.detach().numpy().copy() for p in ps]
    old = {"param_groups": [{k: v for k, v in g.items() if k not in ("maximize", "foreach")}
                            for g in sd["param_groups"]],
           "state": {i: {k: (float(v) if k in ("step", "mu_product", "eta", "mu") else v)
                         for k, v in s.items()}
                     for i, s in sd["state"].items()}}
    ps2, opt2 = _make(fg, name, {}, values, np.float32)
    opt2.load_state_dict(old)
    assert opt2.param_groups[0]["maximize"] is False
    assert opt2.state[ps2[0]]["step"].dim() == 0
    _train(fg, ps, opt, a, c, 5, 5, np.float32)
    _train(fg, ps2, opt2, a, c, 5, 5, np.float32)
    for p, q in zip(ps, ps2):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
