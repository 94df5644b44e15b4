"""The losses composed of elementwise ops: kl_div (batchmean, log_target), soft_margin,
margin_ranking, hinge_embedding, cosine_embedding, multilabel_soft_margin, poisson_nll,
gaussian_nll, and their modules: values and gradients against PyTorch for every reduction,
finite differences, PyTorch's errors."""
import warnings

import numpy as np
import pytest

from _backend import fg, REFERENCE, reference_torch
from _fd import check_grad

F = fg.nn.functional
nn = fg.nn
torch = reference_torch()
RNG = np.random.default_rng(7)

X = RNG.standard_normal((4, 5))
X2 = RNG.standard_normal((4, 5))
P = RNG.dirichlet(np.ones(5), size=4)
P[0, 1] = 0.0                                            # a zero probability: 0 log 0 is 0
SIGN = np.where(RNG.standard_normal((4, 5)) > 0, 1.0, -1.0)
SIGN4 = np.array([1.0, -1.0, -1.0, 1.0])
COUNTS = np.array([[0.0, 1.0, 2.0, 5.0, 0.5]] * 4)
BITS = (RNG.uniform(size=(4, 5)) > 0.5).astype(float)
VAR = RNG.uniform(0.1, 2.0, (4, 5))
VAR[0, 0] = 1e-9                                         # below eps: clamped

# name -> (call(F, tensors, reduction), arrays, which arrays get gradients)
CASES = {
    "kl_div": (lambda F, t, r: F.kl_div(t[0], t[1], reduction=r),
               [np.log(np.clip(P[::-1], 1e-3, None)), P], (0, 1)),
    "kl_div_log_target": (lambda F, t, r: F.kl_div(t[0], t[1], reduction=r, log_target=True),
                          [X, X2], (0, 1)),
    "soft_margin": (lambda F, t, r: F.soft_margin_loss(t[0], t[1], reduction=r), [X, SIGN], (0,)),
    "margin_ranking": (lambda F, t, r: F.margin_ranking_loss(t[0], t[1], t[2], 0.3, reduction=r),
                       [X, X2, SIGN], (0, 1)),
    "hinge_embedding": (lambda F, t, r: F.hinge_embedding_loss(t[0], t[1], 0.7, reduction=r),
                        [X, SIGN], (0,)),
    "cosine_embedding": (lambda F, t, r: F.cosine_embedding_loss(t[0], t[1], t[2], 0.1,
                                                                 reduction=r),
                         [X, X2, SIGN4], (0, 1)),
    "multilabel_soft_margin": (lambda F, t, r: F.multilabel_soft_margin_loss(t[0], t[1],
                                                                             reduction=r),
                               [X, BITS], (0,)),
    "multilabel_soft_margin_weight": (
        lambda F, t, r: F.multilabel_soft_margin_loss(t[0], t[1], weight=t[2], reduction=r),
        [X, BITS, np.linspace(0.5, 2, 5)], (0,)),
    "poisson_nll": (lambda F, t, r: F.poisson_nll_loss(t[0], t[1], reduction=r), [X, COUNTS],
                    (0,)),
    "poisson_nll_full": (lambda F, t, r: F.poisson_nll_loss(t[0], t[1], False, True,
                                                            reduction=r),
                         [np.abs(X) + 0.1, COUNTS], (0,)),
    "gaussian_nll": (lambda F, t, r: F.gaussian_nll_loss(t[0], t[1], t[2], reduction=r),
                     [X, X2, VAR], (0, 1, 2)),
    "gaussian_nll_full_short_var": (lambda F, t, r: F.gaussian_nll_loss(t[0], t[1], t[2], True,
                                                                        reduction=r),
                                    [X, X2, VAR[:, 0]], (0, 2)),
}
REDUCTIONS = ["none", "mean", "sum"]


def _run(lib, name, reduction):
    call, arrays, wrt = CASES[name]
    ts = [lib.tensor(a, dtype=lib.float64, requires_grad=i in wrt) for i, a in enumerate(arrays)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = call(lib.nn.functional, ts, reduction)
    g = np.linspace(-1, 1, out.numel()).reshape(tuple(out.shape))
    out.backward(lib.tensor(g, dtype=lib.float64))
    return out.detach().numpy(), [ts[i].grad.numpy() for i in wrt]


@pytest.mark.skipif(torch is None, reason="compares with PyTorch")
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_values_and_gradients_match_torch(name, reduction):
    (y, grads), (ty, tgrads) = _run(fg, name, reduction), _run(torch, name, reduction)
    assert y.shape == ty.shape
    np.testing.assert_allclose(y, ty, rtol=1e-12, atol=1e-14)
    if name == "kl_div":
        # d/dtarget of target log target at target == 0: torch's xlogy gives NaN, fastgrad the
        # input's term alone (the 0 log 0 term contributes 0); compared where target > 0
        grads[1], tgrads[1] = grads[1][P > 0], tgrads[1][P > 0]
    for g, tg in zip(grads, tgrads):
        np.testing.assert_allclose(g, tg, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("name", sorted(CASES))
def test_finite_differences(name):
    call, arrays, wrt = CASES[name]
    if name.startswith("gaussian"):                      # away from the clamp at eps
        arrays = [np.clip(a, 1e-3, None) if i == 2 else a for i, a in enumerate(arrays)]
    if name == "kl_div":                                 # away from target == 0
        arrays = [arrays[0], np.clip(arrays[1], 1e-3, None)]
    check_grad(lambda *t: call(F, t, "sum"), arrays, wrt=wrt)


@pytest.mark.skipif(torch is None, reason="compares with PyTorch")
def test_kl_div_batchmean_and_legacy_flags():
    for lib_pair in [(fg, torch)]:
        outs = []
        for lib in lib_pair:
            inp = lib.tensor(np.log(P[::-1] + 0.01), dtype=lib.float64)
            tgt = lib.tensor(P, dtype=lib.float64)
            outs.append([float(lib.nn.functional.kl_div(inp, tgt, reduction="batchmean")),
                         float(lib.nn.KLDivLoss(reduction="batchmean")(inp, tgt)),
                         float(lib.nn.functional.kl_div(inp[0], tgt[0], reduction="batchmean"))])
        np.testing.assert_allclose(outs[0], outs[1], rtol=1e-12)


def test_kl_div_warns_about_mean():
    x = fg.zeros(2, 3)
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        F.kl_div(x, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.kl_div(x, x, reduction="sum")
    assert nn.KLDivLoss(reduction="batchmean").reduction == "batchmean"
    with pytest.raises(ValueError):
        F.kl_div(x, x, reduction="bad")


@pytest.mark.skipif(REFERENCE, reason="fastgrad's loss modules check reduction when built")
def test_loss_module_checks_its_reduction_when_built():
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        nn.KLDivLoss(reduction="bad")


def test_bad_arguments():
    with pytest.raises(RuntimeError, match="All input tensors should have same dimension"):
        F.margin_ranking_loss(fg.zeros(3), fg.zeros(3), fg.zeros(1, 3))
    with pytest.raises(RuntimeError, match="1D target tensor expects 2D input tensors"):
        F.cosine_embedding_loss(fg.zeros(3), fg.zeros(3), fg.ones(3))
    with pytest.raises(RuntimeError, match="0D or 1D target tensor expected"):
        F.cosine_embedding_loss(fg.zeros(2, 3), fg.zeros(2, 3), fg.ones(2, 1))
    with pytest.raises(ValueError, match="var has negative entry"):
        F.gaussian_nll_loss(fg.zeros(3), fg.zeros(3), fg.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="var has negative entry"):
        F.gaussian_nll_loss(fg.zeros(3), fg.zeros(3), -1.0)
    with pytest.raises(ValueError, match="var is of incorrect size"):
        F.gaussian_nll_loss(fg.zeros(4, 3), fg.zeros(4, 3), fg.ones(2))
    with pytest.raises(ValueError):
        F.poisson_nll_loss(fg.zeros(3), fg.zeros(3), reduction="bad")
    np.testing.assert_allclose(float(F.gaussian_nll_loss(fg.zeros(3), fg.ones(3), 2.0)),
                               0.5 * (np.log(2.0) + 0.5))


MODULES = [
    (lambda: nn.KLDivLoss(reduction="sum", log_target=True),
     lambda a, b: F.kl_div(a, b, reduction="sum", log_target=True), 2),
    (lambda: nn.SoftMarginLoss(), F.soft_margin_loss, 2),
    (lambda: nn.MarginRankingLoss(0.5), lambda a, b, c: F.margin_ranking_loss(a, b, c, 0.5), 3),
    (lambda: nn.HingeEmbeddingLoss(2.0, reduction="sum"),
     lambda a, b: F.hinge_embedding_loss(a, b, 2.0, reduction="sum"), 2),
    (lambda: nn.CosineEmbeddingLoss(0.2, reduction="none"),
     lambda a, b, c: F.cosine_embedding_loss(a, b, c[:, 0], 0.2, reduction="none"), 3),
    (lambda: nn.MultiLabelSoftMarginLoss(), F.multilabel_soft_margin_loss, 2),
    (lambda: nn.PoissonNLLLoss(full=True), lambda a, b: F.poisson_nll_loss(a, b, full=True), 2),
    (lambda: nn.GaussianNLLLoss(full=True, eps=1e-3),
     lambda a, b, c: F.gaussian_nll_loss(a, b, c.abs(), full=True, eps=1e-3), 3),
]


@pytest.mark.parametrize("make,fn,n", MODULES)
def test_modules_call_their_function(make, fn, n):
    args = [fg.tensor(X), fg.tensor(np.abs(X2)), fg.tensor(SIGN)][:n]
    m = make()
    if isinstance(m, nn.CosineEmbeddingLoss):
        args[2] = args[2][:, 0]
        expected = fn(*args[:2], args[2][:, None])
    else:
        expected = fn(*args)
    if isinstance(m, nn.GaussianNLLLoss):
        args[2] = args[2].abs()
    np.testing.assert_array_equal(m(*args).numpy(), expected.numpy())
    assert repr(m) == type(m).__name__ + "()"


# --- triplet_margin_loss, multi_margin_loss ----------------------------------------------------------

MARGIN_CASES = {
    "triplet": (lambda F, t, r: F.triplet_margin_loss(t[0], t[1], t[2], 0.5, reduction=r),
                [X, X2, X[::-1] * 0.5], (0, 1, 2)),
    "triplet_swap_p1": (lambda F, t, r: F.triplet_margin_loss(t[0], t[1], t[2], 2.0, 1.0,
                                                              swap=True, reduction=r),
                        [X, X2, X2 * 0.8 + 0.1], (0, 1, 2)),
    "triplet_1d": (lambda F, t, r: F.triplet_margin_loss(t[0][0], t[1][0], t[2][0], 3.0,
                                                         reduction=r), [X, X2, X[::-1].copy()],
                   (0, 1, 2)),
    "multi_margin": (lambda F, t, r: F.multi_margin_loss(t[0], t[1].long(), reduction=r),
                     [X, np.array([0, 4, 2, 2])], (0,)),
    "multi_margin_p2_weight": (lambda F, t, r: F.multi_margin_loss(t[0], t[1].long(), 2, 0.7,
                                                                   t[2], reduction=r),
                               [X, np.array([1, 1, 3, 0]), np.linspace(0.5, 1.5, 5)], (0,)),
    "multi_margin_1d": (lambda F, t, r: F.multi_margin_loss(t[0][1], t[1].long()[1],
                                                            reduction=r),
                        [X, np.array([0, 3, 2, 2])], (0,)),
}


@pytest.mark.skipif(torch is None, reason="compares with PyTorch")
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", sorted(MARGIN_CASES))
def test_margin_losses_match_torch(name, reduction):
    CASES[name] = MARGIN_CASES[name]
    try:
        (y, grads), (ty, tgrads) = _run(fg, name, reduction), _run(torch, name, reduction)
    finally:
        del CASES[name]
    assert y.shape == ty.shape
    np.testing.assert_allclose(y, ty, rtol=1e-12, atol=1e-14)
    for g, tg in zip(grads, tgrads):
        np.testing.assert_allclose(g, tg, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("name", sorted(MARGIN_CASES))
def test_margin_losses_finite_differences(name):
    call, arrays, wrt = MARGIN_CASES[name]
    check_grad(lambda *t: call(F, t, "sum"), arrays, wrt=wrt)


def test_margin_loss_errors_and_modules():
    with pytest.raises(ValueError, match="margin must be greater than 0"):
        F.triplet_margin_loss(fg.zeros(2, 3), fg.zeros(2, 3), fg.zeros(2, 3), margin=0.0)
    with pytest.raises(RuntimeError, match="expected to have the same number of dimensions"):
        F.triplet_margin_loss(fg.zeros(2, 3), fg.zeros(3), fg.zeros(2, 3))
    with pytest.raises(ValueError, match="expected margin to be greater than 0"):
        nn.TripletMarginLoss(margin=0)
    with pytest.raises(ValueError, match="only p == 1 and p == 2 supported"):
        nn.MultiMarginLoss(p=3)
    with pytest.raises(ValueError, match="expected weight to be None or 1D tensor"):
        nn.MultiMarginLoss(weight=fg.ones(2, 2))
    with pytest.raises(RuntimeError, match="target out of range"):
        F.multi_margin_loss(fg.zeros(2, 3), fg.tensor([0, 3]))
    with pytest.raises(RuntimeError, match="Expected target size \\[2\\], but got \\[3\\]"):
        F.multi_margin_loss(fg.zeros(2, 3), fg.tensor([1, 0, 0]))
    with pytest.raises(RuntimeError, match="Expected non-empty vector or matrix"):
        F.multi_margin_loss(fg.zeros(2, 3, 1), fg.tensor([1, 0]))
    a, b, c = fg.tensor(X), fg.tensor(X2), fg.tensor(X[::-1].copy())
    np.testing.assert_array_equal(nn.TripletMarginLoss(0.5, swap=True)(a, b, c).numpy(),
                                  F.triplet_margin_loss(a, b, c, 0.5, swap=True).numpy())
    t = fg.tensor([0, 4, 2, 2])
    np.testing.assert_array_equal(nn.MultiMarginLoss(2, 0.5)(a, t).numpy(),
                                  F.multi_margin_loss(a, t, 2, 0.5).numpy())
    assert repr(nn.TripletMarginLoss()) == "TripletMarginLoss()"
    assert repr(nn.MultiMarginLoss()) == "MultiMarginLoss()"
