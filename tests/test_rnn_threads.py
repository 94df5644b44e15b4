"""Recurrent layers on fastgrad's thread team (Note [Recurrence on the thread team]): the same
bits on 1 and 2 threads, and the team path's values and gradients against PyTorch."""
import itertools

import numpy as np
import pytest

from _backend import fg, REFERENCE

pytestmark = pytest.mark.skipif(REFERENCE, reason="fastgrad's thread team")

KINDS = [("LSTM", {}), ("GRU", {}), ("RNN", {}), ("RNN", {"nonlinearity": "relu"})]


@pytest.fixture
def team():
    """Every recurrence and product of the layers on the team, whatever its size."""
    from fastgrad._core import rnn_kernels
    old_macs, old_threads = rnn_kernels.set_team_macs(0), fg.get_num_threads()
    yield
    rnn_kernels.set_team_macs(old_macs)
    fg.set_num_threads(old_threads)


def _run(name, extra, dtype, threads, batch, packed, seed=0):
    """Outputs and every gradient of a 2-layer bidirectional layer (70 hidden units: two unit
    blocks of unequal size) over 90 steps (270 rows at batch 3: the input projection in two
    blocks of rows, and LSTM's weight gradients too), on the given thread count."""
    fg.set_num_threads(threads)
    fg.manual_seed(seed)
    m = getattr(fg.nn, name)(5, 70, num_layers=2, bidirectional=True, dtype=dtype, **extra)
    rng = np.random.default_rng(seed)
    x = fg.tensor(rng.standard_normal((90, batch, 5)), dtype=dtype, requires_grad=True)
    inp = x
    if packed:
        lengths = [90] + [90 - 7 * i for i in range(1, batch)]
        inp = fg.nn.utils.rnn.pack_padded_sequence(x, lengths)
    out, hidden = m(inp)
    if packed:
        out = fg.nn.utils.rnn.pad_packed_sequence(out)[0]
    hs = hidden if isinstance(hidden, tuple) else (hidden,)
    w = fg.tensor(np.linspace(-1, 1, int(np.prod(out.shape))).reshape(tuple(out.shape)),
                  dtype=dtype)
    loss = (out * w).sum() + sum((h * h).sum() for h in hs)
    loss.backward()
    return [out.detach().numpy(), *[h.detach().numpy() for h in hs], x.grad.numpy(),
            *[p.grad.numpy() for p in m.parameters()]]


@pytest.mark.parametrize("kind,batch,packed", list(itertools.product(range(len(KINDS)),
                                                                     (1, 3), (False, True))))
def test_one_and_two_threads_give_the_same_bits(team, kind, batch, packed):
    name, extra = KINDS[kind]
    one = _run(name, extra, fg.float32, 1, batch, packed)
    two = _run(name, extra, fg.float32, 2, batch, packed)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", range(len(KINDS)))
def test_one_and_two_threads_give_the_same_bits_without_biases(team, kind):
    name, extra = KINDS[kind]
    one = _run(name, {**extra, "bias": False}, fg.float32, 1, 3, False)
    two = _run(name, {**extra, "bias": False}, fg.float32, 2, 3, False)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_team_and_single_thread_paths_give_the_same_bits():
    from fastgrad._core import rnn_kernels
    old = fg.get_num_threads()
    try:
        single = _run("LSTM", {}, fg.float32, 2, 3, False)       # small: the caller's thread
        old_macs = rnn_kernels.set_team_macs(0)
        try:
            both = _run("LSTM", {}, fg.float32, 2, 3, False)
        finally:
            rnn_kernels.set_team_macs(old_macs)
    finally:
        fg.set_num_threads(old)
    for a, b in zip(single, both):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", range(len(KINDS)))
@pytest.mark.parametrize("bias", [True, False])
def test_team_path_matches_torch(team, kind, bias):
    torch = pytest.importorskip("torch")
    name, extra = KINDS[kind]
    extra = {**extra, "bias": bias}         # without: no bias-gradient sums in the loop
    ours = _run(name, extra, fg.float64, 2, 3, False)
    tm = getattr(torch.nn, name)(5, 70, num_layers=2, bidirectional=True, **extra).double()
    fg.manual_seed(0)                                    # _run's weights
    fm = getattr(fg.nn, name)(5, 70, num_layers=2, bidirectional=True, dtype=fg.float64, **extra)
    tm.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in fm.state_dict().items()})
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal((90, 3, 5)), requires_grad=True)
    out, hidden = tm(x)
    hs = hidden if isinstance(hidden, tuple) else (hidden,)
    w = torch.tensor(np.linspace(-1, 1, int(np.prod(out.shape))).reshape(tuple(out.shape)))
    ((out * w).sum() + sum((h * h).sum() for h in hs)).backward()
    ref = [out.detach().numpy(), *[h.detach().numpy() for h in hs], x.grad.numpy(),
           *[p.grad.numpy() for p in tm.parameters()]]
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)
