"""float32 recurrences on packed weight panels (Note [Packed recurrent weights] in
panel_tiles.h): every tile level the CPU has (2 AVX-512, 1 AVX2+FMA, 0 the BLAS products) against
float64, at sizes that leave partial tiles and panels, and the same bits on 1 and 2 threads."""
import numpy as np
import pytest

from _backend import fg, REFERENCE

pytestmark = pytest.mark.skipif(REFERENCE, reason="fastgrad's tiled loops")

KINDS = [("LSTM", {}), ("GRU", {}), ("RNN", {}), ("RNN", {"nonlinearity": "relu"})]

# input, hidden, batch, steps, packed, bidirectional: partial row tiles (batch 1, 3, 33 against
# 8 or 6 rows), partial panels (hidden 5, 17, 130: gate columns and P not multiples of 16 or 32,
# and 130 two unit blocks of unequal size), one input feature, shrinking batches; batches of
# 33 and 50 run in row blocks (24 + 9 rows, 24 + 24 + 2: Note [Rows of a row block]), the
# shrinking batch leaving some of them empty
SIZES = [(1, 5, 1, 6, False, False), (3, 17, 3, 7, True, True), (4, 130, 33, 5, False, False),
         (2, 17, 33, 9, True, False), (6, 40, 9, 11, False, True), (3, 20, 50, 6, True, True)]


@pytest.fixture
def level_and_team(request):
    """The tile level under test (skipped when the CPU does not have it), every recurrence on
    the team whatever its size, and everything put back afterwards."""
    from fastgrad._core import rnn_kernels
    best = rnn_kernels.tiles(True)
    old_macs, old_threads = rnn_kernels.set_team_macs(0), fg.get_num_threads()
    try:
        if rnn_kernels.tiles(request.param) != request.param:
            pytest.skip(f"this CPU runs tiles up to level {best}")
        yield request.param
    finally:
        rnn_kernels.tiles(best)
        rnn_kernels.set_team_macs(old_macs)
        fg.set_num_threads(old_threads)


def _run(name, extra, size, dtype, threads, seed=0):
    """Output, final states and every gradient of one layer (weights drawn in float64 and cast,
    so both dtypes start from the same numbers), on the given thread count."""
    nin, hidden, batch, steps, packed, bidir = size
    fg.set_num_threads(threads)
    fg.manual_seed(seed)
    m = getattr(fg.nn, name)(nin, hidden, bidirectional=bidir, dtype=fg.float64, **extra)
    if dtype != fg.float64:
        m = m.to(dtype)
    rng = np.random.default_rng(seed)
    x = fg.tensor(rng.standard_normal((steps, batch, nin)), dtype=dtype, requires_grad=True)
    inp = x
    if packed:
        lengths = [steps] + [max(1, steps - 1 - i % steps) for i in range(batch - 1)]
        inp = fg.nn.utils.rnn.pack_padded_sequence(x, sorted(lengths, reverse=True))
    out, hidden_out = m(inp)
    if packed:
        out = fg.nn.utils.rnn.pad_packed_sequence(out)[0]
    hs = hidden_out if isinstance(hidden_out, tuple) else (hidden_out,)
    w = fg.tensor(np.cos(np.arange(int(np.prod(out.shape)))).reshape(tuple(out.shape)),
                  dtype=dtype)
    ((out * w).sum() + sum((h * h).sum() for h in hs)).backward()
    return [out.detach().numpy(), *[h.detach().numpy() for h in hs], x.grad.numpy(),
            *[p.grad.numpy() for p in m.parameters()]]


@pytest.mark.parametrize("level_and_team", [2, 1, 0], indirect=True)
@pytest.mark.parametrize("kind", range(len(KINDS)))
@pytest.mark.parametrize("size", SIZES)
def test_float32_tiles_match_float64(level_and_team, kind, size):
    name, extra = KINDS[kind]
    got = _run(name, extra, size, fg.float32, 2)
    ref = _run(name, extra, size, fg.float64, 2)
    for a, b in zip(got, ref):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5 * max(1.0, np.abs(b).max()))


@pytest.mark.parametrize("level_and_team", [2, 1], indirect=True)
@pytest.mark.parametrize("kind", range(len(KINDS)))
@pytest.mark.parametrize("size", SIZES[1:4] + SIZES[5:])
def test_float32_tiles_same_bits_on_one_and_two_threads(level_and_team, kind, size):
    name, extra = KINDS[kind]
    one = _run(name, extra, size, fg.float32, 1)
    two = _run(name, extra, size, fg.float32, 2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("module", ["rnn_kernels", "blas"])
def test_tiles_reports_and_sets_the_level(module):
    """Both users of the packed-panel tiles (the time loops, the linear products) keep a level."""
    import importlib
    mod = importlib.import_module("fastgrad._core." + module)
    best = mod.tiles(True)
    try:
        assert best in (0, 1, 2)
        assert mod.tiles() == best
        assert mod.tiles(False) == 0
        assert mod.tiles() == 0
    finally:
        mod.tiles(best)


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def team(request):
    """Every recurrence on the thread team whatever its size (2 threads: the row blocks shared
    between them; 1: all rows at once), everything put back afterwards."""
    from fastgrad._core import rnn_kernels
    old_macs, old_threads = rnn_kernels.set_team_macs(0), fg.get_num_threads()
    fg.set_num_threads(request.param)
    try:
        yield request.param
    finally:
        rnn_kernels.set_team_macs(old_macs)
        fg.set_num_threads(old_threads)


# Batches of 34, 50 and 150 rows run in row blocks (24 + 10, 24 + 24 + 2, and, at most
# MAX_ROW_BLOCKS of them, 6 x 24 + 6: Note [Rows of a row block]): every weight and bias
# gradient sums the row blocks' shares, checked here against float64 central differences of
# the loss (a sample of entries of every parameter and of x).
FD_CASES = [("LSTM", {}, 34, False, False), ("GRU", {}, 34, True, False),
            ("RNN", {}, 50, False, True), ("LSTM", {}, 50, True, True),
            ("LSTM", {}, 150, True, False)]


@pytest.mark.parametrize("case", FD_CASES, ids=lambda c: f"{c[0]}-b{c[2]}-packed{c[3]}-bi{c[4]}")
def test_row_block_gradients_match_finite_differences(team, case):
    name, extra, batch, packed, bidir = case
    steps, nin, hidden = 4, 3, 5
    fg.manual_seed(1)
    m = getattr(fg.nn, name)(nin, hidden, bidirectional=bidir, dtype=fg.float64, **extra)
    rng = np.random.default_rng(2)
    x0 = rng.standard_normal((steps, batch, nin))
    lengths = sorted([steps] + [int(v) for v in rng.integers(1, steps + 1, batch - 1)],
                     reverse=True)

    def loss(x):
        inp = fg.nn.utils.rnn.pack_padded_sequence(x, lengths) if packed else x
        out, h = m(inp)
        if packed:
            out = fg.nn.utils.rnn.pad_packed_sequence(out)[0]
        hs = h if isinstance(h, tuple) else (h,)
        w = fg.tensor(np.sin(np.arange(int(np.prod(out.shape)))).reshape(tuple(out.shape)))
        return (out * w).sum() + sum((q * q).sum() for q in hs)

    x = fg.tensor(x0, requires_grad=True)
    m.zero_grad()
    loss(x).backward()
    targets = [(x, x.grad.numpy().copy())] + [(p, p.grad.numpy().copy()) for p in m.parameters()]
    for t, grad in targets:
        flat = t.detach().numpy().reshape(-1)
        for i in rng.choice(flat.size, size=min(6, flat.size), replace=False):
            orig = flat[i]
            vals = []
            for d in (1e-6, -1e-6):
                with fg.no_grad():
                    t.view(-1)[int(i)] = orig + d
                vals.append(loss(x if t is not x else t).item())
            with fg.no_grad():
                t.view(-1)[int(i)] = orig
            fd = (vals[0] - vals[1]) / 2e-6
            assert abs(grad.reshape(-1)[i] - fd) <= 1e-6 * max(1.0, abs(fd)), (t.shape, i)


@pytest.mark.parametrize("case", FD_CASES, ids=lambda c: f"{c[0]}-b{c[2]}-packed{c[3]}-bi{c[4]}")
def test_row_blocks_give_each_row_what_it_gets_alone(team, case):
    """Each batch row of a batch cut into row blocks has the outputs and final states it gets
    in a batch of its own (one row: no row blocks)."""
    name, extra, batch, packed, bidir = case
    steps, nin, hidden = 5, 3, 6
    fg.manual_seed(3)
    m = getattr(fg.nn, name)(nin, hidden, bidirectional=bidir, **extra)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((steps, batch, nin)).astype(np.float32)
    lengths = sorted([steps] + [int(v) for v in rng.integers(1, steps + 1, batch - 1)],
                     reverse=True) if packed else [steps] * batch

    def run(xs, lens):
        t = fg.tensor(xs)
        inp = fg.nn.utils.rnn.pack_padded_sequence(t, lens) if packed else t
        out, h = m(inp)
        if packed:
            out = fg.nn.utils.rnn.pad_packed_sequence(out)[0]
        return out.numpy(), [q.numpy() for q in (h if isinstance(h, tuple) else (h,))]

    with fg.no_grad():
        out, hs = run(x, lengths)
        for r in range(batch):
            o1, h1 = run(x[:lengths[r], r:r + 1], [lengths[r]])
            np.testing.assert_allclose(out[:lengths[r], r], o1[:, 0], rtol=1e-6, atol=1e-7)
            for a, b in zip(hs, h1):
                np.testing.assert_allclose(a[:, r], b[:, 0], rtol=1e-6, atol=1e-7)
