"""LBFGS: against torch.optim.LBFGS (fixed step and strong Wolfe line search, history
overflow, several steps), on a least-squares problem with known minimiser (always), its state
dict (pickled, and saved by torch), and its errors."""
import pickle

import numpy as np
import pytest

from _backend import REFERENCE, fg


def _problem(lib, dtype, **kw):
    """Least squares plus a quartic penalty on w; returns (params, optimizer, closure)."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 5)), rng.standard_normal((20, 3))
    w0, b0 = rng.standard_normal((5, 3)), rng.standard_normal(3)
    x, y = lib.tensor(x.astype(dtype)), lib.tensor(y.astype(dtype))
    w = lib.tensor(w0.astype(dtype), requires_grad=True)
    b = lib.tensor(b0.astype(dtype), requires_grad=True)
    opt = lib.optim.LBFGS([w, b], **kw)

    def closure():
        opt.zero_grad()
        loss = ((x @ w + b - y) ** 2).mean() + 0.1 * (w ** 4).sum()
        loss.backward()
        return loss
    return [w, b], opt, closure


def _run(lib, dtype, steps=4, **kw):
    ps, opt, closure = _problem(lib, dtype, **kw)
    losses = [float(opt.step(closure).detach()) for _ in range(steps)]
    st = opt.state[ps[0]]
    return [p.detach().numpy().copy() for p in ps], losses, (st["func_evals"], st["n_iter"])


OPTIONS = [dict(max_iter=4), dict(max_iter=3, history_size=2, lr=0.5),
           dict(max_iter=4, line_search_fn="strong_wolfe"),
           dict(max_iter=3, history_size=2, lr=0.5, line_search_fn="strong_wolfe"),
           dict(max_iter=30, max_eval=12, line_search_fn="strong_wolfe")]
OIDS = ["-".join(f"{k}={v}" for k, v in kw.items()) for kw in OPTIONS]


@pytest.mark.parametrize("kw", OPTIONS, ids=OIDS)
def test_vs_torch_float64(kw):
    torch = pytest.importorskip("torch")
    import fastgrad
    got, want = _run(fastgrad, np.float64, **kw), _run(torch, np.float64, **kw)
    for g, w in zip(got[0], want[0]):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)
    assert got[2] == want[2]                       # the same evaluations and iterations


@pytest.mark.parametrize("kw", [OPTIONS[1], OPTIONS[3]], ids=[OIDS[1], OIDS[3]])
def test_vs_torch_float32(kw):
    """float32 away from the tolerances (which decide when to stop, and near convergence a
    rounding decides them): options that stop on max_iter."""
    torch = pytest.importorskip("torch")
    import fastgrad
    got, want = _run(fastgrad, np.float32, **kw), _run(torch, np.float32, **kw)
    for g, w in zip(got[0], want[0]):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5)
    assert got[2] == want[2]


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_reaches_the_least_squares_solution(line_search_fn):
    """A convex quadratic: the iterates reach the normal equations' solution (to 1e-6: the
    curvature test y·s > 1e-10 stops the updates near it, in torch too)."""
    rng = np.random.default_rng(5)
    a, y = rng.standard_normal((30, 4)), rng.standard_normal(30)
    want = np.linalg.lstsq(a, y, rcond=None)[0]
    at, yt = fg.tensor(a), fg.tensor(y)
    w = fg.tensor(np.zeros(4), requires_grad=True)
    opt = fg.optim.LBFGS([w], line_search_fn=line_search_fn, tolerance_grad=1e-12,
                         tolerance_change=1e-15)

    def closure():
        opt.zero_grad()
        loss = ((at @ w - yt) ** 2).sum()
        loss.backward()
        return loss
    for _ in range(5):
        opt.step(closure)
    np.testing.assert_allclose(w.detach().numpy(), want, rtol=1e-6, atol=1e-7)


def test_state_dict_pickled_continues_identically():
    ps, opt, closure = _problem(fg, np.float64, max_iter=3, history_size=2,
                                line_search_fn="strong_wolfe")
    opt.step(closure)
    opt.step(closure)
    saved = pickle.loads(pickle.dumps(opt.state_dict()))
    assert {"d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad", "prev_loss",
            "func_evals", "n_iter", "al"} <= set(saved["state"][0])
    values = [p.detach().numpy().copy() for p in ps]
    opt.step(closure)
    ps2, opt2, closure2 = _problem(fg, np.float64, max_iter=3, history_size=2,
                                   line_search_fn="strong_wolfe")
    for p, v in zip(ps2, values):
        p.detach().numpy()[...] = v
    opt2.load_state_dict(saved)
    opt2.step(closure2)
    for p, q in zip(ps, ps2):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())


def test_state_dict_saved_by_torch_continues_as_in_torch():
    torch = pytest.importorskip("torch")
    import fastgrad
    kw = dict(max_iter=3, history_size=2, line_search_fn="strong_wolfe")
    tps, topt, tclosure = _problem(torch, np.float64, **kw)
    topt.step(tclosure)
    topt.step(tclosure)

    def export(v):
        if isinstance(v, torch.Tensor):
            return fastgrad.from_numpy(v.numpy().copy())
        return [export(x) for x in v] if isinstance(v, list) else v
    sd = topt.state_dict()
    sd = {"param_groups": sd["param_groups"],
          "state": {k: {n: export(v) for n, v in s.items()} for k, s in sd["state"].items()}}
    fps, fopt, fclosure = _problem(fastgrad, np.float64, **kw)
    for p, q in zip(fps, tps):
        p.detach().numpy()[...] = q.detach().numpy()
    fopt.load_state_dict(sd)
    topt.step(tclosure)
    fopt.step(fclosure)
    for p, q in zip(fps, tps):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-12,
                                   atol=1e-12)


def test_defaults_and_repr_match_pytorch():
    torch = pytest.importorskip("torch")
    import fastgrad
    f = fastgrad.optim.LBFGS([fastgrad.zeros(2, requires_grad=True)], max_iter=8)
    t = torch.optim.LBFGS([torch.zeros(2, requires_grad=True)], max_iter=8)
    assert f.defaults == t.defaults
    assert repr(f) == repr(t)


def test_errors():
    p, q = fg.zeros(2, requires_grad=True), fg.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        fg.optim.LBFGS([p], lr=-1)
    with pytest.raises(ValueError, match="doesn't support per-parameter options"):
        fg.optim.LBFGS([{"params": [p]}, {"params": [q]}])
    opt = fg.optim.LBFGS([p], line_search_fn="backtracking")

    def closure():
        opt.zero_grad()
        loss = ((p - 1) ** 2).sum()
        loss.backward()
        return loss
    with pytest.raises(RuntimeError, match="only 'strong_wolfe' is supported"):
        opt.step(closure)


@pytest.mark.skipif(REFERENCE, reason="torch evaluates the closure before it checks the name")
def test_bad_line_search_leaves_the_parameters_alone():
    p = fg.tensor(np.ones(2), requires_grad=True)
    opt = fg.optim.LBFGS([p], line_search_fn="backtracking")
    with pytest.raises(RuntimeError):
        opt.step(lambda: None)
    np.testing.assert_array_equal(p.detach().numpy(), np.ones(2))
