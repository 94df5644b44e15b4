"""Seeded draws give PyTorch's numbers bit for bit (Note [PyTorch's streams]).

Three layers: golden values captured from torch 2.13 for seed 0 (assert the streams without torch
installed), bit-identical arrays against torch where it is installed (seeds, sizes, dtypes,
interleavings, state round trips, generators), and distribution sanity checks.
"""
import math
import warnings

import numpy as np
import pytest

from _backend import fg, REFERENCE


def _np(t):
    return t.detach().numpy()


# -- golden values: torch 2.13, manual_seed(0) then the call ------------------------------------

GOLDEN_CALLS = {
    "rand_f32": lambda T: T.rand(5),
    "rand_f64": lambda T: T.rand(3, dtype=T.float64),
    "randn_f32_small": lambda T: T.randn(5),
    "randn_f32_blocks": lambda T: T.randn(20)[[0, 1, 15, 16, 19]],
    "randn_f64_blocks": lambda T: T.randn(17, dtype=T.float64)[[0, 8, 16]],
    "randint": lambda T: T.randint(0, 10, (6,)),
    "randint_wide": lambda T: T.randint(-2 ** 40, 2 ** 40, (3,)),
    "randperm": lambda T: T.randperm(10),
    "normal_": lambda T: T.empty(17).normal_(2.0, 3.0)[[0, 16]],
    "uniform_": lambda T: T.empty(4).uniform_(-2.5, 3.0),
    "exponential_": lambda T: T.empty(3).exponential_(0.5),
    "log_normal_": lambda T: T.empty(3).log_normal_(0.3, 1.2),
    "cauchy_": lambda T: T.empty(3).cauchy_(1.5, 2.5),
    "geometric_": lambda T: T.empty(4, dtype=T.int64).geometric_(0.3),
    "bernoulli_": lambda T: T.empty(12).bernoulli_(0.3),
    "bernoulli_probs": lambda T: T.bernoulli(T.full((8,), 0.5)),
    "multinomial": lambda T: T.multinomial(T.tensor([0.1, 0.2, 0.3, 0.4]), 3),
    "multinomial_replacement": lambda T: T.multinomial(T.tensor([0.1, 0.2, 0.3, 0.4]), 6, True),
    "dropout": lambda T: T.nn.functional.dropout(T.ones(8), 0.5),
    "linear_weight": lambda T: T.nn.Linear(3, 4).weight[0],
    "linear_bias": lambda T: (T.nn.Linear(3, 4), T.nn.Linear(3, 4).bias)[1],
    "random_int64": lambda T: T.empty((), dtype=T.int64).random_(),
    "generator_7": lambda T: T.rand(2, generator=T.Generator().manual_seed(7)),
}

GOLDEN_SEED0 = {
    "rand_f32": [0.49625658988952637, 0.7682217955589294, 0.08847743272781372,
                 0.13203048706054688, 0.30742281675338745],
    "rand_f64": [0.9700530018065531, 0.707819864399788, 0.45938294312745087],
    "randn_f32_small": [1.5409960746765137, -0.293428897857666, -2.1787893772125244,
                        0.5684312582015991, -1.0845223665237427],
    "randn_f32_blocks": [-1.1258398294448853, -1.152360200881958, -0.843676745891571,
                         0.9318265914916992, 0.05373690277338028],
    "randn_f64_blocks": [-2.310411800234176, 0.23871805816817063, 0.6748575435940039],
    "randint": [4, 9, 3, 0, 3, 9],
    "randint_wide": [-358231004625, -593374360384, 291447657211],
    "randperm": [4, 1, 7, 5, 3, 9, 0, 8, 6, 2],
    "normal_": [-1.3775194883346558, 4.795479774475098],
    "uniform_": [0.22941124439239502, 1.7252198457717896, -2.013374090194702,
                 -1.7738323211669922],
    "exponential_": [7.016652584075928, 2.4607694149017334, 1.230088233947754],
    "log_normal_": [8.577953338623047, 0.9492200016975403, 0.09881091117858887],
    "cauchy_": [27.99432373046875, 3.4119181632995605, 1.1792516708374023],
    "geometric_": [1, 1, 3, 1],
    "bernoulli_": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0],
    "bernoulli_probs": [1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0],
    "multinomial": [2, 1, 3],
    "multinomial_replacement": [3, 3, 2, 3, 3, 3],
    "dropout": [0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 2.0, 2.0],
    "linear_weight": [-0.004322517663240433, 0.3097158372402191, -0.4751853346824646],
    "linear_bias": [-0.3634638786315918, -0.14616501331329346, -0.22505110502243042,
                    0.4988310933113098],
    "random_int64": [900450186894289455],
    "generator_7": [0.5349225401878357, 0.19880318641662598],
}


@pytest.mark.parametrize("name", sorted(GOLDEN_CALLS))
def test_golden_values_seed0(name):
    fg.manual_seed(0)
    got = _np(GOLDEN_CALLS[name](fg)).ravel()
    want = np.array(GOLDEN_SEED0[name], dtype=got.dtype)
    assert np.array_equal(got, want), (name, got.tolist())


def test_golden_state_after_draws():
    """The engine's words themselves: state bytes after a scalar normal (kept sine included)."""
    g = fg.Generator().manual_seed(5)
    fg.randn(1, dtype=fg.float64, generator=g)
    s = _np(g.get_state())
    assert s.dtype == np.uint8 and s.shape == (5056,)
    assert int(s[:8].view(np.uint64)[0]) == 5 and int(s[8:12].view(np.int32)[0]) == 621
    assert s[5024:5032].view(np.float64)[0] == -0.6038215878840039
    assert s[5040] == 1


def test_randperm_negative_raises():
    with pytest.raises(RuntimeError, match="negative dimension -1"):
        fg.randperm(-1)


def test_seed_rules():
    fg.manual_seed(-1)
    assert fg.initial_seed() == 2 ** 64 - 1
    a = _np(fg.rand(3))
    fg.manual_seed(2 ** 64 - 1)
    assert np.array_equal(_np(fg.rand(3)), a)          # the same 64-bit seed
    for bad in (2 ** 64, -2 ** 63 - 1):
        with pytest.raises(ValueError, match="Overflow"):
            fg.manual_seed(bad)
    g = fg.Generator()
    assert g.initial_seed() == 67280421310721
    s = g.seed()
    assert g.initial_seed() == s and 0 <= s < 2 ** 64


def test_state_errors():
    g = fg.Generator()
    with pytest.raises(TypeError):
        g.set_state("not a tensor")
    with pytest.raises(TypeError):
        g.set_state(fg.zeros(5056))
    with pytest.raises(RuntimeError, match="size"):
        g.set_state(fg.zeros(10, dtype=fg.uint8))
    if not REFERENCE:                     # PyTorch accepts this state and reads past its words
        bad = _np(g.get_state()).copy()
        bad[8:12] = np.array([624], dtype=np.int32).view(np.uint8)     # left
        bad[16:24] = np.array([600], dtype=np.uint64).view(np.uint8)   # next
        with pytest.raises(RuntimeError, match="state"):
            g.set_state(fg.tensor(bad, dtype=fg.uint8))


def test_bad_arguments_raise_like_pytorch():
    with pytest.raises(RuntimeError, match="from=5 >= to=5"):
        fg.randint(5, 5, (2,))
    with pytest.raises(TypeError):
        fg.randint(3, 5)                                # size must be a tuple
    with pytest.raises(RuntimeError, match="out of bounds"):
        fg.randint(300, (2,), dtype=fg.uint8)
    with pytest.raises(ValueError, match="Overflow"):
        fg.randint(-2 ** 63, 2 ** 63, (2,))
    with pytest.raises(RuntimeError, match="lambda > 0"):
        fg.empty(3).exponential_(0)
    with pytest.raises(RuntimeError, match=r"\[0, 1\]"):
        fg.empty(3).bernoulli_(1.5)
    with pytest.raises(RuntimeError, match="std >= 0"):
        fg.empty(3).normal_(0, -1)
    with pytest.raises(RuntimeError, match="from=1 > to=0"):
        fg.empty(3).uniform_(1, 0)
    with pytest.raises(NotImplementedError):
        fg.randn(3, dtype=fg.int64)
    with pytest.raises(RuntimeError, match="without replacement"):
        fg.multinomial(fg.ones(3), 4)
    with pytest.raises(RuntimeError, match="sum of probabilities"):
        fg.multinomial(fg.zeros(3), 2, True)


def test_generator_independent_of_default():
    fg.manual_seed(11)
    want = _np(fg.rand(4))
    fg.manual_seed(11)
    g = fg.Generator().manual_seed(11)
    fg.randn(50, generator=g)
    fg.randperm(20, generator=g)
    assert np.array_equal(_np(fg.rand(4)), want)       # default stream untouched by g's draws
    assert np.array_equal(_np(fg.rand(4, generator=fg.Generator().manual_seed(11))), want)


def test_state_round_trip_and_fork_rng():
    fg.manual_seed(3)
    fg.randn(1)                                        # leaves a kept normal in the state
    state = fg.get_rng_state()
    a = [_np(fg.randn(5)), _np(fg.rand(17)), _np(fg.randint(9, (4,)))]
    fg.set_rng_state(state)
    b = [_np(fg.randn(5)), _np(fg.rand(17)), _np(fg.randint(9, (4,)))]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    fg.set_rng_state(state)
    with fg.random.fork_rng():
        fg.rand(100)
    assert np.array_equal(_np(fg.randn(5)), a[0])


def test_generator_pickles_and_copies():
    import copy
    import pickle
    g = fg.Generator().manual_seed(3)
    fg.randn(1, generator=g)                             # a kept normal travels too
    copies = [pickle.loads(pickle.dumps(g)), copy.deepcopy(g)]
    want = _np(fg.randn(5, generator=g))
    for h in copies:
        assert h.initial_seed() == 3
        assert np.array_equal(_np(fg.randn(5, generator=h)), want)


def test_threads_share_a_generator_without_tearing_it():
    """Draws from several threads are whole draws: the state ends where the same number of draws
    on one thread leaves it (each draw holds the generator for its whole length)."""
    import threading
    g = fg.Generator().manual_seed(8)

    def work():
        for _ in range(40):
            fg.randn(2000, generator=g)
            fg.rand(999, generator=g, dtype=fg.float64)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    h = fg.Generator().manual_seed(8)
    for _ in range(160):
        fg.randn(2000, generator=h)
        fg.rand(999, generator=h, dtype=fg.float64)
    assert np.array_equal(_np(g.get_state()), _np(h.get_state()))


def test_dataloader_style_draws():
    """RandomSampler/random_split: a 64-bit seed from random_() then randperm on a Generator."""
    g = fg.Generator().manual_seed(0)
    seed = int(fg.empty((), dtype=fg.int64).random_(generator=g).item())
    assert seed == 900450186894289455
    perm = _np(fg.randperm(10, generator=fg.Generator().manual_seed(seed)))
    assert sorted(perm.tolist()) == list(range(10))


# -- distribution sanity -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_distribution_moments(dtype):
    fg.manual_seed(1234)
    n = 200_000
    dt = getattr(fg, dtype)
    u = _np(fg.rand(n, dtype=dt))
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.005
    z = _np(fg.randn(n, dtype=dt))
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    small = np.concatenate([_np(fg.randn(7, dtype=dt)) for _ in range(3000)])
    assert abs(small.mean()) < 0.05 and abs(small.std() - 1) < 0.05
    e = _np(fg.empty(n, dtype=dt).exponential_(2.0))
    assert e.min() >= 0 and abs(e.mean() - 0.5) < 0.01
    b = _np(fg.empty(n, dtype=dt).bernoulli_(0.3))
    assert set(np.unique(b).tolist()) <= {0.0, 1.0} and abs(b.mean() - 0.3) < 0.01
    w = _np(fg.empty(n, dtype=dt).uniform_(-3, 5))
    assert w.min() >= -3 and w.max() < 5 and abs(w.mean() - 1) < 0.05
    ln = _np(fg.empty(n, dtype=dt).log_normal_(0.0, 0.5))
    assert ln.min() > 0 and abs(np.log(ln).mean()) < 0.01 and abs(np.log(ln).std() - 0.5) < 0.01
    c = _np(fg.empty(n, dtype=dt).cauchy_(2.0, 1.0))
    assert abs(np.median(c) - 2.0) < 0.02 and abs((np.abs(c - 2.0) < 1).mean() - 0.5) < 0.01
    geo = _np(fg.empty(n, dtype=dt).geometric_(0.25))
    assert geo.min() >= 1 and abs(geo.mean() - 4.0) < 0.05


def test_integer_draws_cover_range_uniformly():
    fg.manual_seed(7)
    counts = np.bincount(_np(fg.randint(3, 13, (100_000,))) - 3, minlength=10)
    assert counts.sum() == 100_000 and counts.min() > 9_500 and counts.max() < 10_500
    for n in (0, 1, 2, 17, 1000):
        assert sorted(_np(fg.randperm(n)).tolist()) == list(range(n))
    probs = fg.tensor([1.0, 2.0, 3.0, 4.0])
    freq = np.bincount(_np(fg.multinomial(probs, 40_000, True)), minlength=4) / 40_000
    assert np.allclose(freq, [0.1, 0.2, 0.3, 0.4], atol=0.01)
    picks = _np(fg.multinomial(fg.rand(3, 50), 50))
    assert all(sorted(row.tolist()) == list(range(50)) for row in picks)


def test_init_and_dropout_sanity():
    fg.manual_seed(0)
    w = fg.empty(300, 200)
    fg.nn.init.trunc_normal_(w, std=0.02, a=-0.04, b=0.04)
    a = _np(w)
    assert a.min() >= -0.04 and a.max() <= 0.04 and abs(a.std() - 0.0176) < 0.001
    fg.nn.init.trunc_normal_(w, mean=0.0, std=1.0, a=1.5, b=3.0)   # the rejection route
    a = _np(w)
    assert a.min() >= 1.5 and a.max() <= 3.0
    q = _np(fg.nn.init.orthogonal_(fg.empty(6, 4)))
    assert np.allclose(q.T @ q, np.eye(4), atol=1e-5)
    y = _np(fg.nn.functional.dropout(fg.ones(100_000), 0.25))
    assert set(np.unique(y).tolist()) == {0.0, np.float32(1 / np.float32(0.75))}
    assert abs((y == 0).mean() - 0.25) < 0.01


# -- bit for bit against torch -------------------------------------------------------------------

SEEDS = [0, 1, 2 ** 32 + 7, 2 ** 63 + 11, -5]
SIZES = [0, 1, 15, 16, 17, 100, 1001]


@pytest.fixture(scope="module")
def torch():
    if REFERENCE:
        pytest.skip("compares fastgrad with torch")
    return pytest.importorskip("torch")


def _both(torch, seed, fn):
    out = []
    for lib in (torch, fg):
        lib.manual_seed(seed)
        res = fn(lib)
        out.append([_np(r) for r in (res if isinstance(res, (tuple, list)) else [res])])
    return out


def _assert_same(torch, seed, fn):
    want, got = _both(torch, seed, fn)
    assert len(want) == len(got)
    for i, (w, g) in enumerate(zip(want, got)):
        assert w.dtype == g.dtype and w.shape == g.shape, (i, w.dtype, g.dtype, w.shape, g.shape)
        assert np.array_equal(w, g, equal_nan=True), (i, np.flatnonzero(w != g)[:5])


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
@pytest.mark.parametrize("seed", SEEDS)
def test_vs_torch_float_streams(torch, seed, dtype):
    def draws(L):
        dt = getattr(L, dtype)
        out = []
        for n in SIZES:        # interleaved on one generator: the state must advance as PyTorch's
            out += [L.rand(n, dtype=dt), L.randn(n, dtype=dt),
                    L.empty(n, dtype=dt).normal_(-1.3, 3.7),
                    L.empty(n, dtype=dt).uniform_(-2.5, 3.0),
                    L.empty(n, dtype=dt).exponential_(0.7),
                    L.randn(3, dtype=dt), L.randint(0, 1000, (n,))]
        return out
    _assert_same(torch, seed, draws)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_vs_torch_large(torch, dtype):
    _assert_same(torch, 42, lambda L: [L.rand(100_003, dtype=getattr(L, dtype)),
                                       L.randn(100_003, dtype=getattr(L, dtype)),
                                       L.randperm(100_003)])


@pytest.mark.parametrize("dtype", ["int64", "int32", "int16", "int8", "uint8", "bool",
                                   "float16", "float32", "float64"])
def test_vs_torch_random_(torch, dtype):
    def draws(L):
        dt = getattr(L, dtype)
        return [L.zeros(9, dtype=dt).random_(), L.zeros(9, dtype=dt).random_(2),
                L.zeros(9, dtype=dt).random_(0, 2), L.zeros(9, dtype=dt).random_(1, None)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in SEEDS[:3]:
            _assert_same(torch, seed, draws)


def test_vs_torch_integers(torch):
    def draws(L):
        return [L.randint(10, (5,)), L.randint(-3, 7, (2, 3)), L.randint(0, 2 ** 40, (4,)),
                L.randint(0, 2 ** 28, (4,)), L.randint(0, 2 ** 28 - 1, (4,)),
                L.randint(5, (3,), dtype=L.float32), L.randint(low=2, high=9, size=(3,)),
                L.empty(5, dtype=L.int64).random_(-2 ** 63, 2 ** 63 - 1),
                L.empty(5, dtype=L.int64).random_(-2 ** 63, None),
                L.empty(5, dtype=L.int64).random_(-2 ** 62, None),
                L.randperm(0), L.randperm(1), L.randperm(17), L.randperm(1000),
                L.randperm(10, dtype=L.float32),
                L.randint_like(L.zeros(5), 10), L.randint_like(L.zeros(5), 3, 10)]
    for seed in SEEDS:
        _assert_same(torch, seed, draws)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_vs_torch_bernoulli_multinomial_normal(torch, dtype):
    def draws(L):
        dt = getattr(L, dtype)
        return [L.empty(40, dtype=dt).bernoulli_(0.3),
                L.empty(40, dtype=dt).bernoulli_(L.rand(40, dtype=dt)),
                L.bernoulli(L.rand(3, 40, dtype=dt)), L.rand(6, dtype=dt).bernoulli(),
                L.multinomial(L.rand(4, dtype=dt), 1), L.multinomial(L.rand(10, dtype=dt), 5),
                L.multinomial(L.rand(3, 10, dtype=dt), 20, True),
                L.multinomial(L.rand(2, 10, dtype=dt), 1, True),
                L.normal(L.zeros(20, dtype=dt) + 1, L.ones(20, dtype=dt) * 2),
                L.normal(L.zeros(5, dtype=dt), 2.0), L.normal(3.0, L.ones(17, dtype=dt)),
                L.normal(1.0, 2.0, size=(3, 6)),
                L.rand_like(L.zeros(3, dtype=dt)), L.randn_like(L.zeros(20, dtype=dt))]
    for seed in SEEDS[:3]:
        _assert_same(torch, seed, draws)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_vs_torch_log_normal_cauchy_geometric(torch, dtype):
    def draws(L):
        dt = getattr(L, dtype)
        out = []
        for n in SIZES:
            out += [L.empty(n, dtype=dt).log_normal_(0.3, 1.2), L.empty(n, dtype=dt).cauchy_(),
                    L.empty(n, dtype=dt).cauchy_(1.5, 2.5), L.empty(n, dtype=dt).geometric_(0.3),
                    L.empty(n, dtype=L.int64).geometric_(0.05), L.randn(3, dtype=dt),
                    L.empty(n, dtype=dt).log_normal_()]
        return out
    for seed in SEEDS[:3]:
        _assert_same(torch, seed, draws)


def test_vs_torch_non_contiguous_fill(torch):
    _assert_same(torch, 5, lambda L: [L.zeros(20, 30).t().normal_(),
                                      L.zeros(20, 30).t().uniform_(),
                                      L.zeros(20, 30)[:, ::2].normal_(),
                                      L.zeros(8, 6).t().random_(100)])


def test_vs_torch_generators_and_state(torch):
    def draws(L):
        g = L.Generator().manual_seed(7)
        out = [L.rand(3, generator=g), L.randn(20, generator=g), L.randn(2, generator=g),
               L.randint(5, (3,), generator=g), L.randperm(6, generator=g),
               L.empty((), dtype=L.int64).random_(generator=g),
               L.empty(5).normal_(generator=g), L.multinomial(L.ones(5), 2, generator=g),
               L.rand(2), L.rand(size=(2, 3)), L.randn(size=(17,), dtype=L.float64)]
        out.append(g.get_state())                     # PyTorch's byte layout, word for word
        s = L.get_rng_state()
        a = L.randn(1)
        L.set_rng_state(s)
        out += [a, L.randn(1), L.get_rng_state()]
        return out
    _assert_same(torch, 9, draws)


def test_vs_torch_state_interchange(torch):
    """A state saved by torch continues in fastgrad exactly (and back)."""
    tg = torch.Generator().manual_seed(21)
    torch.randn(3, generator=tg, dtype=torch.float64)
    fgen = fg.Generator()
    fgen.set_state(fg.tensor(tg.get_state().numpy(), dtype=fg.uint8))
    assert np.array_equal(_np(fg.randn(7, generator=fgen, dtype=fg.float64)),
                          torch.randn(7, generator=tg, dtype=torch.float64).numpy())
    tg.set_state(torch.from_numpy(_np(fgen.get_state()).copy()))
    assert np.array_equal(torch.rand(33, generator=tg).numpy(), _np(fg.rand(33, generator=fgen)))


def test_vs_torch_modules_init_dropout(torch):
    def draws(L):
        warnings.simplefilter("ignore")
        lin = L.nn.Linear(3, 4)
        big = L.nn.Linear(100, 7)
        emb = L.nn.Embedding(10, 3)
        ln, bn = L.nn.LayerNorm(5), L.nn.BatchNorm1d(5)
        w = L.empty(5, 7)
        inits = []
        for f in (lambda: L.nn.init.uniform_(w, -1, 2), lambda: L.nn.init.normal_(w, 1, 2),
                  lambda: L.nn.init.xavier_uniform_(w), lambda: L.nn.init.xavier_normal_(w, 2.),
                  lambda: L.nn.init.kaiming_uniform_(w),
                  lambda: L.nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"),
                  lambda: L.nn.init.trunc_normal_(w, std=.02),
                  lambda: L.nn.init.trunc_normal_(w, mean=0.0, std=1.0, a=1.5, b=3.0),
                  lambda: L.nn.init.sparse_(w, 0.4, std=0.5)):
            inits.append(f().clone())
        drops = [L.nn.functional.dropout(L.ones(50), 0.3),
                 L.nn.functional.dropout(L.ones(40, dtype=L.float16) * 3, 0.47),
                 L.nn.functional.dropout(L.ones(7, dtype=L.float64) * 3, 0.6),
                 L.nn.Dropout(0.2)(L.arange(20.0))]
        return [lin.weight, lin.bias, big.weight, big.bias, emb.weight, ln.weight, ln.bias,
                bn.weight, bn.bias] + inits + drops + [L.rand(3)]
    for seed in (0, 1, 77):
        _assert_same(torch, seed, draws)


def test_vs_torch_orthogonal_draws(torch):
    """orthogonal_ takes PyTorch's normal draws; its QR is NumPy's LAPACK (last-bit level)."""
    (want,), (got,) = _both(torch, 4, lambda L: L.nn.init.orthogonal_(L.empty(4, 6)))
    assert np.allclose(want, got, rtol=0, atol=1e-5)
    assert math.isclose(float(np.abs(want).sum()), float(np.abs(got).sum()), rel_tol=1e-5)
