"""float32 linear products on packed panels (Note [Linear products on packed panels] in
blas.pyx): x @ W^T and the input gradient G @ W on every tile level the CPU has (2 AVX-512,
1 AVX2+FMA, 0 OpenBLAS) against float64, at sizes that leave partial tiles and panels or fall
back to OpenBLAS (fewer than 8 rows, K past 1024), and the same bits whether the product is
split across threads by rows or by columns or not at all."""
import numpy as np
import pytest

from _backend import fg, REFERENCE

pytestmark = pytest.mark.skipif(REFERENCE, reason="fastgrad's tiled products")

# rows, in features, out features: 8 rows and 9 (a partial row tile), 3 and 17 features (a
# partial 16- or 32-column panel), 130 rows (two 128-row blocks), K 1024 (the longest on the
# tiles) and 1025, 7 rows (OpenBLAS)
SIZES = [(8, 3, 5), (9, 17, 33), (130, 64, 65), (300, 1024, 10), (40, 1025, 48), (7, 20, 20),
         (64, 128, 128)]


@pytest.fixture
def level(request):
    from fastgrad._core import blas
    best = blas.tiles(True)
    old_split, old_threads = blas.set_split_macs(1 << 22), fg.get_num_threads()
    try:
        if blas.tiles(request.param) != request.param:
            pytest.skip(f"this CPU runs tiles up to level {best}")
        yield request.param
    finally:
        blas.tiles(best)
        blas.set_split_macs(old_split)
        fg.set_num_threads(old_threads)


def _linear(size, dtype, seed=0):
    """Output and the gradients of x, W and b of one linear layer (operands drawn in float64)."""
    rows, nin, nout = size
    rng = np.random.default_rng(seed)
    x = fg.tensor(rng.standard_normal((rows, nin)), dtype=dtype, requires_grad=True)
    w = fg.tensor(rng.standard_normal((nout, nin)), dtype=dtype, requires_grad=True)
    b = fg.tensor(rng.standard_normal(nout), dtype=dtype, requires_grad=True)
    g = fg.tensor(rng.standard_normal((rows, nout)), dtype=dtype)
    y = fg.nn.functional.linear(x, w, b)
    (y * g).sum().backward()
    return [y.detach().numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy()]


@pytest.mark.parametrize("level", [2, 1, 0], indirect=True)
@pytest.mark.parametrize("size", SIZES)
def test_float32_linear_on_tiles_matches_float64(level, size):
    got = _linear(size, fg.float32)
    ref = _linear(size, fg.float64)
    for a, b in zip(got, ref):
        assert a.dtype == np.float32
        tol = 3e-6 * np.sqrt(size[1] + size[2]) * max(1.0, np.abs(b).max())
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=tol)


@pytest.mark.parametrize("level", [2, 1], indirect=True)
@pytest.mark.parametrize("size", [(256, 64, 40), (40, 64, 256), (130, 1024, 96)])
def test_float32_linear_on_tiles_same_bits_split_or_not(level, size):
    """Rows (m >= n) or columns (n > m) cut between two threads, or one product on one."""
    from fastgrad._core import blas
    fg.set_num_threads(1)
    one = _linear(size, fg.float32)
    fg.set_num_threads(2)
    blas.set_split_macs(0)
    two = _linear(size, fg.float32)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)



def _heads(dtype, n, seq, heads, hd, seed=3):
    """Self-attention by heads (the products of each (batch, head) pair on blas.product): the
    output and the packed projection's gradient, operands drawn in float64."""
    from fastgrad._core.ops_attention import heads_attention
    rng = np.random.default_rng(seed)
    qkv = fg.tensor(rng.standard_normal((n, seq, 3 * heads * hd)), dtype=dtype,
                    requires_grad=True)
    g = fg.tensor(rng.standard_normal((seq, n, heads * hd)), dtype=dtype)
    out = heads_attention(qkv, None, None, heads, 1 / np.sqrt(hd))
    out.backward(g)
    return out.detach().numpy().astype(np.float64), qkv.grad.numpy().astype(np.float64)


@pytest.mark.parametrize("level", [2, 1, 0], indirect=True)
@pytest.mark.parametrize("shape", [(2, 9, 2, 5), (3, 64, 4, 32), (1, 130, 1, 17), (2, 7, 2, 8)])
def test_attention_heads_on_tiles_match_float64(level, shape):
    """A pair's q k^T, P v, dO V^T and dS K run on the tiles (9 and 130 keys: partial tiles and
    two row blocks; 7 queries: fewer than 8 rows, OpenBLAS): against float64."""
    ref = _heads("float64", *shape)
    got = _heads("float32", *shape)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
