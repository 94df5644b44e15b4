"""Sorting, selection, scans and scatters (sort ... cumprod, scatter ... unique): values and
indices against PyTorch's order rules (ties, NaN), gradients against float64 finite differences,
and the same calls compared with PyTorch where it is installed; scatter_add's dtype check."""
import numpy as np
import pytest
from _backend import REFERENCE, fg
from _fd import check_grad

I = lambda *v: fg.tensor(list(v))             # noqa: E731  an int64 index tensor


# -- order rules, asserted without torch ------------------------------------------------------
def test_sort_ties_and_nan_both_directions():
    x = fg.tensor([1.0, 3.0, 3.0, float("nan"), 2.0, 3.0])
    v, i = fg.sort(x)
    assert i.tolist() == [0, 4, 1, 2, 5, 3] and np.isnan(v.numpy()[-1])
    v, i = fg.sort(x, descending=True)
    assert i.tolist() == [3, 1, 2, 5, 4, 0] and np.isnan(v.numpy()[0])
    assert fg.sort(I(2, 1, 2, 1), descending=True).indices.tolist() == [0, 2, 1, 3]
    big = fg.tensor([np.iinfo(np.int64).min, 0, np.iinfo(np.int64).max])
    assert fg.argsort(big, descending=True).tolist() == [2, 1, 0]


def test_cummax_cummin_pick_the_latest_tie_and_stick_to_nan():
    v, i = fg.cummax(fg.tensor([1.0, 3.0, 3.0, 2.0, 3.0, float("nan"), 5.0]), 0)
    assert i.tolist() == [0, 1, 2, 2, 4, 5, 5]
    assert np.isnan(v.numpy()[5:]).all()
    assert fg.cummin(fg.tensor([3.0, 1.0, 1.0, 2.0, 1.0]), 0).indices.tolist() == [0, 1, 2, 2, 4]


def test_topk_kthvalue_values():
    x = fg.tensor([[4.0, 1.0, 3.0], [0.5, 2.0, 9.0]])
    assert fg.topk(x, 2).values.tolist() == [[4.0, 3.0], [9.0, 2.0]]
    assert fg.topk(x, 1, dim=0, largest=False).indices.tolist() == [[1, 0, 0]]
    assert fg.kthvalue(x, 2).values.tolist() == [3.0, 2.0]
    assert fg.kthvalue(x, 2, keepdim=True).values.shape == (2, 1)
    with pytest.raises(RuntimeError, match="k out of range"):
        fg.topk(x, 4)
    with pytest.raises(IndexError, match="Dimension out of range"):
        fg.sort(x, dim=2)


@pytest.mark.parametrize("op", ["sort", "sort_desc", "topk", "kthvalue", "cummax", "cummin",
                                "msort"])
def test_selection_gradients(op, rng):
    x = rng.permutation(12).reshape(3, 4) + rng.uniform(0, 0.5, (3, 4))   # no ties
    fn = {"sort": lambda t: fg.sort(t, dim=1).values,
          "sort_desc": lambda t: fg.sort(t, dim=0, descending=True)[0],
          "topk": lambda t: fg.topk(t, 2, dim=1).values,
          "kthvalue": lambda t: fg.kthvalue(t, 2, dim=0).values,
          "cummax": lambda t: fg.cummax(t, 1).values,
          "cummin": lambda t: fg.cummin(t, 0).values,
          "msort": fg.msort}[op]
    check_grad(fn, [x])


def test_cumprod_gradient_exact_with_zeros(rng):
    check_grad(lambda t: fg.cumprod(t, 1), [rng.uniform(0.5, 2, (2, 5))])
    check_grad(lambda t: fg.cumprod(t, 0), [np.array([2.0, 0.0, 3.0, 0.0, 1.5])])
    x = fg.tensor([2.0, 0.0, 3.0, 1.0], requires_grad=True)
    fg.cumprod(x, 0).sum().backward()
    assert x.grad.tolist() == [1.0, 14.0, 0.0, 0.0]


# -- scatter family ---------------------------------------------------------------------------
def test_scatter_values_and_errors():
    x = fg.zeros(3, 4)
    src = fg.arange(1.0, 9.0).view(2, 4)
    assert fg.scatter(x, 0, fg.tensor([[0, 1, 2, 0]]), src).tolist() == \
        [[1, 0, 0, 4], [0, 2, 0, 0], [0, 0, 3, 0]]
    assert x.scatter(1, fg.tensor([[3], [0]]), 5.0).tolist() == \
        [[0, 0, 0, 5], [5, 0, 0, 0], [0, 0, 0, 0]]
    with pytest.raises(RuntimeError, match="index 5 is out of bounds for dimension 0 with size 3"):
        x.scatter(0, fg.tensor([[5, 0, 0, 0]]), src)
    with pytest.raises(RuntimeError, match="Expected self.dtype to be equal to src.dtype"):
        x.scatter(0, fg.tensor([[1, 0, 0, 0]]), src.double())
    y = fg.zeros(3)
    assert y.scatter_(0, fg.tensor([1]), 7.0) is y and y.tolist() == [0, 7, 0]


@pytest.mark.parametrize("reduce", ["sum", "mean", "amax", "amin", "prod"])
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce_values_and_gradients(reduce, include_self, rng):
    index = fg.tensor([0, 1, 0, 1, 2, 0])
    x0 = rng.uniform(0.5, 2, 5)
    s0 = rng.uniform(0.5, 2, 6)
    check_grad(lambda x, s: x.scatter_reduce(0, index, s, reduce, include_self=include_self),
               [x0, s0])
    got = fg.tensor(x0).scatter_reduce(0, index, fg.tensor(s0), reduce,
                                       include_self=include_self).numpy()
    ref = x0.copy()
    for k in range(3):
        vals = list(s0[index.numpy() == k]) + ([x0[k]] if include_self else [])
        ref[k] = {"sum": np.sum, "mean": np.mean, "amax": np.max, "amin": np.min,
                  "prod": np.prod}[reduce](vals)
    np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_scatter_reduce_amax_splits_the_gradient_between_ties():
    x = fg.tensor([1.0, 0.0], requires_grad=True)
    s = fg.tensor([1.0, 1.0, 0.5], requires_grad=True)
    x.scatter_reduce(0, fg.tensor([0, 0, 1]), s, "amax").sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1 / 3, 0.0])
    np.testing.assert_allclose(s.grad.numpy(), [1 / 3, 1 / 3, 1.0])


@pytest.mark.parametrize("op", ["index_add", "index_copy", "index_fill", "masked_select",
                                "masked_scatter", "scatter_src", "scatter_value"])
def test_index_and_mask_gradients(op, rng):
    x = rng.standard_normal((4, 3))
    s = rng.standard_normal((2, 3))
    mask = fg.tensor([[True, False, True], [False, False, True], [True, True, False],
                      [False, True, False]])
    fn, arrays = {
        "index_add": (lambda a, b: a.index_add(0, I(3, 1), b, alpha=2.0), [x, s]),
        "index_copy": (lambda a, b: a.index_copy(0, I(3, 1), b), [x, s]),
        "index_fill": (lambda a: a.index_fill(1, I(0, 2), -1.0), [x]),
        "masked_select": (lambda a: a.masked_select(mask), [x]),
        "masked_scatter": (lambda a, b: a.masked_scatter(mask, b.reshape(-1).repeat(2)), [x, s]),
        "scatter_src": (lambda a, b: a.scatter(1, fg.tensor([[2, 0, 1], [1, 2, 0]]), b), [x, s]),
        "scatter_value": (lambda a: a.scatter(0, fg.tensor([[3, 0, 1]]), 2.5), [x]),
    }[op]
    check_grad(fn, arrays)


def test_index_add_accumulates_repeated_indices():
    out = fg.zeros(3).index_add(0, I(0, 0, 2), fg.tensor([1.0, 2.0, 5.0]))
    assert out.tolist() == [3.0, 0.0, 5.0]
    for bad in (3, -1):
        with pytest.raises(IndexError, match="index out of range in self"):
            fg.zeros(3).index_add(0, I(bad), fg.tensor([1.0]))
    with pytest.raises(IndexError, match="index 3 is out of bounds for dimension 0 with size 3"):
        fg.zeros(3).index_fill(0, I(3), 1.0)


@pytest.mark.skipif(REFERENCE, reason="PyTorch 2.13's ScatterBackward0 rejects its own src gradient here")
def test_scatter_with_a_source_larger_than_its_index(rng):
    check_grad(lambda a, b: a.scatter(1, fg.tensor([[2, 0], [1, 2]]), b),
               [rng.standard_normal((4, 3)), rng.standard_normal((2, 3))])


def test_finders():
    assert fg.tensor([[1, 0], [0, 3]]).nonzero().tolist() == [[0, 0], [1, 1]]
    assert [t.tolist() for t in fg.nonzero(I(1, 0, 2), as_tuple=True)] == [[0, 2]]
    u, inv, cnt = fg.unique(I(3, 1, 3, 2), return_inverse=True, return_counts=True)
    assert (u.tolist(), inv.tolist(), cnt.tolist()) == ([1, 2, 3], [2, 0, 2, 1], [1, 1, 2])
    assert fg.searchsorted(I(1, 3, 5, 7), I(3, 6, 9)).tolist() == [1, 3, 4]
    assert fg.searchsorted(I(1, 3, 5, 7), I(3, 6, 9), right=True).tolist() == [2, 3, 4]
    assert fg.bucketize(I(3, 6, 9), I(1, 3, 5, 7)).tolist() == [1, 3, 4]
    assert fg.bucketize(I(3, 6, 9), I(1, 3, 5, 7), out_int32=True).dtype == fg.int32


# -- the same calls in PyTorch ------------------------------------------------------------------
CALLS = [
    ("sort", lambda m, x: m.sort(x, dim=0, descending=True)),
    ("argsort", lambda m, x: m.argsort(x, dim=1)),
    ("topk", lambda m, x: m.topk(x, 2, dim=0, largest=False)),
    ("kthvalue", lambda m, x: m.kthvalue(x, 3, dim=1, keepdim=True)),
    ("cummax", lambda m, x: m.cummax(x, 1)),
    ("cummin", lambda m, x: m.cummin(x, 0)),
    ("cumprod", lambda m, x: m.cumprod(x, 1)),
    ("scatter", lambda m, x: x.scatter(0, m.tensor([[2, 0, 1, 0]]), x[:1] * 3)),
    ("scatter_reduce", lambda m, x: x.scatter_reduce(1, m.tensor([[0, 0, 3, 3]] * 3), x * 2,
                                                       "amax", include_self=False)),
    ("index_add", lambda m, x: x.index_add(1, m.tensor([0, 3, 0]), x[:, :3])),
    ("index_fill", lambda m, x: x.index_fill(0, m.tensor([2]), 0.5)),
    ("masked_select", lambda m, x: x.masked_select(x > 0)),
    ("unique", lambda m, x: m.unique((x * 2).round().detach(), return_counts=True)),
]


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("name, call", CALLS, ids=[c[0] for c in CALLS])
def test_matches_torch(name, call, rng):
    torch = pytest.importorskip("torch")
    x0 = np.round(rng.standard_normal((3, 4)), 1).astype(np.float32)   # with ties
    if name in ("sort", "argsort", "topk", "kthvalue"):
        x0 = rng.permutation(12).reshape(3, 4).astype(np.float32)      # tie order is torch's own
    results = []
    for m in (fg, torch):
        x = m.tensor(x0, requires_grad=True)
        out = call(m, x)
        outs = list(out) if isinstance(out, tuple) else [out]
        floats = [o for o in outs if o.dtype in (m.float32, m.float64)]
        if floats and floats[0].requires_grad:
            (floats[0] * m.arange(floats[0].numel()).reshape(floats[0].shape)).sum().backward()
        results.append(([o.detach().numpy() for o in outs], x.grad))
    (ours, our_grad), (theirs, their_grad) = results
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=1e-6)
    if their_grad is not None:
        np.testing.assert_allclose(our_grad.numpy(), their_grad.numpy(), rtol=1e-6)


# -- scatter_add needs src of the input's dtype --

def test_scatter_add_dtype_mismatch_raises():
    x = fg.zeros(3)
    src = fg.tensor([1.0, 2.0, 3.0], dtype=fg.float64)
    with pytest.raises(RuntimeError, match="Expected self.dtype to be equal to src.dtype"):
        fg.scatter_add(x, 0, fg.tensor([0, 0, 1]), src)
