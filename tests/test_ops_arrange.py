"""triu/tril, roll, diff, meshgrid, tensordot, kron, cdist, F.pad (four modes), F.normalize,
F.cosine_similarity, F.pairwise_distance, the linalg norms and diag: gradients against float64
finite differences, values against PyTorch where it is installed."""
import numpy as np
import pytest
from _backend import REFERENCE, fg
from _fd import check_grad

F = fg.nn.functional
INF = float("inf")

# name -> (input shapes, m -> the function of tensors), m being fastgrad or torch
GRAD_CASES = {
    "triu": ([(3, 4)], lambda m: lambda x: m.triu(x, 1)),
    "tril": ([(2, 3, 3)], lambda m: lambda x: x.tril(-1)),
    "roll": ([(3, 4)], lambda m: lambda x: x.roll((1, -2), (0, 1))),
    "roll_flat": ([(3, 4)], lambda m: lambda x: m.roll(x, 5)),
    "diff": ([(3, 5)], lambda m: lambda x: m.diff(x, n=2, dim=1)),
    "diff_prepend": ([(4,), (2,)], lambda m: lambda x, p: m.diff(x, prepend=p)),
    "tensordot": ([(2, 3, 4), (4, 3, 5)],
                  lambda m: lambda a, b: m.tensordot(a, b, ([1, 2], [1, 0]))),
    "kron": ([(2, 3), (3, 2)], lambda m: m.kron),
    "cdist2": ([(4, 3), (5, 3)], lambda m: m.cdist),
    "cdist1": ([(4, 3), (5, 3)], lambda m: lambda a, b: m.cdist(a, b, p=1)),
    "cdist3": ([(2, 4, 3), (2, 5, 3)], lambda m: lambda a, b: m.cdist(a, b, p=3)),
    "pad_constant": ([(2, 3, 4)],
                     lambda m: lambda x: m.nn.functional.pad(x, (1, 2, -1, 1), value=0.5)),
    "pad_reflect": ([(2, 3, 4)],
                    lambda m: lambda x: m.nn.functional.pad(x, (2, 1, 1, 2), mode="reflect")),
    "pad_replicate": ([(2, 3, 4)],
                      lambda m: lambda x: m.nn.functional.pad(x, (3, 0), mode="replicate")),
    "pad_circular": ([(2, 3, 4)],
                     lambda m: lambda x: m.nn.functional.pad(x, (1, 2, 2, 0), mode="circular")),
    "normalize": ([(3, 4)], lambda m: lambda x: m.nn.functional.normalize(x, dim=1)),
    "cosine": ([(3, 4), (3, 4)], lambda m: m.nn.functional.cosine_similarity),
    "pairwise": ([(3, 4), (3, 4)], lambda m: m.nn.functional.pairwise_distance),
    "vector_norm3": ([(3, 4)], lambda m: lambda x: m.linalg.vector_norm(x, 3, dim=1)),
    "matrix_norm_fro": ([(2, 3, 4)], lambda m: m.linalg.matrix_norm),
    "matrix_norm_1": ([(3, 4)], lambda m: lambda x: m.linalg.matrix_norm(x, 1)),
    "norm_inf": ([(3, 4)], lambda m: lambda x: m.linalg.norm(x, INF)),
}


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_gradient_matches_finite_differences(name, rng):
    shapes, fn = GRAD_CASES[name]
    check_grad(fn(fg), [rng.standard_normal(s) for s in shapes])


def test_cdist_gradient_is_zero_at_zero_distance():
    x = fg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    fg.cdist(x, x.detach()).sum().backward()
    assert np.isfinite(x.grad.numpy()).all()
    np.testing.assert_allclose(x.grad.numpy(), [[-np.sqrt(0.5)] * 2, [np.sqrt(0.5)] * 2],
                               rtol=1e-6)


def test_meshgrid_indexing():
    a, b = fg.arange(2), fg.arange(3)
    i, j = fg.meshgrid(a, b, indexing="ij")
    assert i.tolist() == [[0, 0, 0], [1, 1, 1]] and j.tolist() == [[0, 1, 2], [0, 1, 2]]
    x, y = fg.meshgrid(a, b, indexing="xy")
    assert x.tolist() == [[0, 1], [0, 1], [0, 1]] and y.tolist() == [[0, 0], [1, 1], [2, 2]]
    with pytest.warns(UserWarning, match="indexing argument"):
        fg.meshgrid(a, b)


def test_pad_values_and_errors():
    x = fg.arange(1.0, 5.0).reshape(1, 4)
    assert F.pad(x, (2, 1), mode="reflect").tolist() == [[3, 2, 1, 2, 3, 4, 3]]
    assert F.pad(x, (1, 2), mode="replicate").tolist() == [[1, 1, 2, 3, 4, 4, 4]]
    assert F.pad(x, (1, 1), mode="circular").tolist() == [[4, 1, 2, 3, 4, 1]]
    assert F.pad(x, (-1, 1), value=9).tolist() == [[2, 3, 4, 9]]
    with pytest.raises(RuntimeError, match="Padding size should be less than"):
        F.pad(x, (4, 0), mode="reflect")
    with pytest.raises(RuntimeError, match="divisible by 2"):
        F.pad(x, (1,))


def test_triangles_need_two_dims():
    with pytest.raises(RuntimeError, match="at least 2 dimensions"):
        fg.triu(fg.ones(3))


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_values_and_gradients_match_torch(name, rng):
    torch = pytest.importorskip("torch")
    shapes, fn = GRAD_CASES[name]
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    results = []
    for m in (fg, torch):
        ins = [m.tensor(a, requires_grad=True) for a in arrays]
        call = fn(m)
        out = call(*ins)
        out.backward(m.ones_like(out))
        results.append((out.detach().numpy(), [t.grad.numpy() for t in ins]))
    (a, ga), (b, gb) = results
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    for x, y in zip(ga, gb):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5)


# --- diag (graph convolution examples build D^-1/2 with it) -------------------------------------

# --- diag and rsqrt (graph convolution examples build D^-1/2 with them) -------------------------

def test_diag_builds_and_reads_diagonals():
    v = fg.tensor([1.0, -2.0, 3.0])
    assert fg.diag(v).tolist() == [[1, 0, 0], [0, -2, 0], [0, 0, 3]]
    assert fg.diag(v, 1).shape == (4, 4) and fg.diag(v, 1)[0, 1].item() == 1.0
    assert fg.diag(v, -2)[4, 2].item() == 3.0 and fg.diag(v, -2).sum().item() == 2.0
    m = fg.arange(9.0).reshape(3, 3)
    assert fg.diag(m).tolist() == [0, 4, 8] and m.diag(1).tolist() == [1, 5]
    assert fg.diag(fg.tensor([1, 2])).dtype == fg.int64
    w = fg.tensor([1.0, 2.0], requires_grad=True)
    (fg.diag(w) * fg.tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
    assert w.grad.tolist() == [1.0, 4.0]
    with pytest.raises(RuntimeError, match="1D or 2D"):
        fg.diag(fg.zeros(2, 2, 2))
