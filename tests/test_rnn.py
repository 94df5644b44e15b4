"""Recurrent layers (RNN, LSTM, GRU, cells) and sequence packing: values and gradients against
PyTorch with identical weights, against float64 finite differences, and bad input."""
import itertools

import numpy as np
import pytest

from _backend import child_env, fg, REFERENCE
from _fd import check_grad

nn = fg.nn
rnn_utils = fg.nn.utils.rnn


def _copy_weights(tm, fm):
    fm.load_state_dict({k: fg.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})


def _both(torch, cls_name, *args, **kwargs):
    torch.manual_seed(0)
    tm = getattr(torch.nn, cls_name)(*args, **kwargs).double()
    fm = getattr(fg.nn, cls_name)(*args, **kwargs, dtype=fg.float64)
    _copy_weights(tm, fm)
    return tm, fm


def _loss(m, out, hidden, lstm):
    """A loss touching every output with distinct weights, so each gradient path is checked."""
    w = m.tensor(np.linspace(-1.0, 1.5, int(np.prod(out.shape))).reshape(tuple(out.shape)))
    loss = (out * w).sum()
    if lstm:
        h, c = hidden
        return loss + (h * h).sum() + 0.7 * c.sum()
    return loss + 0.5 * (hidden * hidden).sum()


def _grads_match(tm, fm, pairs):
    fparams = dict(fm.named_parameters())
    for name, p in tm.named_parameters():
        np.testing.assert_allclose(fparams[name].grad.numpy(), p.grad.numpy(), rtol=1e-9,
                                   atol=1e-11, err_msg=name)
    for t, f in pairs:
        np.testing.assert_allclose(f.grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-11)


KINDS = [("LSTM", {}), ("GRU", {}), ("RNN", {}), ("RNN", {"nonlinearity": "relu"}),
         ("LSTM", {"proj_size": 2})]
GRID = list(itertools.product(range(len(KINDS)), (1, 2), (False, True), (False, True), (1, 3),
                              (False, True)))


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("kind,layers,bidir,batch_first,batch,with_h0", GRID)
def test_layer_matches_torch(kind, layers, bidir, batch_first, batch, with_h0):
    torch = pytest.importorskip("torch")
    name, extra = KINDS[kind]
    lstm = name == "LSTM"
    tm, fm = _both(torch, name, 4, 3, num_layers=layers, bidirectional=bidir,
                   batch_first=batch_first, **extra)
    rng = np.random.default_rng(kind * 100 + layers * 10 + batch)
    T = 5
    x = rng.standard_normal((batch, T, 4) if batch_first else (T, batch, 4))
    D = 2 if bidir else 1
    hsz = extra.get("proj_size", 3)
    tin, fin = [torch.tensor(x, requires_grad=True)], [fg.tensor(x, requires_grad=True)]
    if with_h0:
        h0 = rng.standard_normal((layers * D, batch, hsz))
        c0 = rng.standard_normal((layers * D, batch, 3))
        for arr in ([h0, c0] if lstm else [h0]):
            tin.append(torch.tensor(arr, requires_grad=True))
            fin.append(fg.tensor(arr, requires_grad=True))
    results = []
    for m, mod, ins in ((torch, tm, tin), (fg, fm, fin)):
        hx = None
        if with_h0:
            hx = (ins[1], ins[2]) if lstm else ins[1]
        out, hidden = mod(ins[0], hx)
        _loss(m, out, hidden, lstm).backward()
        hs = list(hidden) if lstm else [hidden]
        results.append([out.detach().numpy()] + [h.detach().numpy() for h in hs])
    for a, b in zip(*results):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
    _grads_match(tm, fm, list(zip(tin, fin)))


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("kind", range(len(KINDS)))
@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_packed_sequences_match_torch(kind, enforce_sorted):
    torch = pytest.importorskip("torch")
    name, extra = KINDS[kind]
    lstm = name == "LSTM"
    tm, fm = _both(torch, name, 4, 3, num_layers=2, bidirectional=True, batch_first=True,
                   **extra)
    rng = np.random.default_rng(kind)
    lengths = [5, 4, 4, 2] if enforce_sorted else [2, 5, 1, 4]
    x = rng.standard_normal((4, 5, 4))
    hsz = extra.get("proj_size", 3)
    h0 = rng.standard_normal((4, 4, hsz))
    c0 = rng.standard_normal((4, 4, 3))
    results, pairs = [], []
    for m, mod, utils in ((torch, tm, torch.nn.utils.rnn), (fg, fm, rnn_utils)):
        ins = [m.tensor(a, requires_grad=True) for a in ([x, h0, c0] if lstm else [x, h0])]
        pairs.append(ins)
        packed = utils.pack_padded_sequence(ins[0], m.tensor(lengths), batch_first=True,
                                            enforce_sorted=enforce_sorted)
        out, hidden = mod(packed, (ins[1], ins[2]) if lstm else ins[1])
        assert out.batch_sizes.tolist() == packed.batch_sizes.tolist()
        padded, lens = utils.pad_packed_sequence(out, batch_first=True, padding_value=-2.0)
        assert lens.tolist() == lengths
        _loss(m, padded, hidden, lstm).backward()
        hs = list(hidden) if lstm else [hidden]
        results.append([padded.detach().numpy(), out.data.detach().numpy()]
                       + [h.detach().numpy() for h in hs])
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
    _grads_match(tm, fm, list(zip(*pairs)))


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_h", [True, False])
def test_cells_match_torch(name, batched, with_h):
    torch = pytest.importorskip("torch")
    tm, fm = _both(torch, name, 4, 3)
    rng = np.random.default_rng(1)
    lead = (2,) if batched else ()
    arrays = [rng.standard_normal(lead + (4,))]
    if with_h:
        arrays += [rng.standard_normal(lead + (3,))] * (2 if name == "LSTMCell" else 1)
    results, pairs = [], []
    for m, mod in ((torch, tm), (fg, fm)):
        ins = [m.tensor(a, requires_grad=True) for a in arrays]
        pairs.append(ins)
        hx = None
        if with_h:
            hx = tuple(ins[1:]) if name == "LSTMCell" else ins[1]
        out = mod(ins[0], hx)
        outs = list(out) if name == "LSTMCell" else [out]
        sum((o * (i + 1.5)).sum() for i, o in enumerate(outs)).backward()
        results.append([o.detach().numpy() for o in outs])
    for a, b in zip(*results):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
    _grads_match(tm, fm, list(zip(*pairs)))


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
@pytest.mark.parametrize("ctor", [
    lambda m: m.nn.LSTM(4, 3, num_layers=2, bidirectional=True, proj_size=2),
    lambda m: m.nn.GRU(5, 4, bias=False),
    lambda m: m.nn.RNN(3, 6, 2, "relu"),
    lambda m: m.nn.LSTMCell(4, 3),
    lambda m: m.nn.GRUCell(2, 5),
    lambda m: m.nn.RNNCell(3, 2, nonlinearity="relu")])
def test_default_init_equals_torch_after_manual_seed(ctor):
    torch = pytest.importorskip("torch")
    torch.manual_seed(7)
    tm = ctor(torch)
    fg.manual_seed(7)
    fm = ctor(fg)
    tn = [(n, tuple(p.shape)) for n, p in tm.named_parameters()]
    assert [(n, tuple(p.shape)) for n, p in fm.named_parameters()] == tn
    for (n, p), (_, q) in zip(tm.named_parameters(), fm.named_parameters()):
        np.testing.assert_array_equal(q.detach().numpy(), p.detach().numpy(), err_msg=n)


@pytest.mark.skipif(REFERENCE, reason="compares fastgrad with torch")
def test_float32_lstm_matches_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tm = torch.nn.LSTM(16, 32, batch_first=True)
    fm = fg.nn.LSTM(16, 32, batch_first=True)
    _copy_weights(tm, fm)
    x = np.random.default_rng(0).standard_normal((8, 20, 16)).astype(np.float32)
    outs = []
    for m, mod in ((torch, tm), (fg, fm)):
        xt = m.tensor(x, requires_grad=True)
        out, (h, c) = mod(xt)
        (out.sum() + c.sum()).backward()
        assert out.dtype == m.float32
        outs.append((out.detach().numpy(), xt.grad.numpy(), mod.weight_hh_l0.grad.numpy()))
    for a, b in zip(*outs):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


# --- float64 finite differences of the layer kernel ---------------------------------------------

FD_CASES = list(itertools.product([0, 1, 2, 3], [False, True], [False, True]))


@pytest.mark.skipif(REFERENCE, reason="fastgrad's layer kernel")
@pytest.mark.parametrize("mode,reverse,packed", FD_CASES + [(2, False, True), (2, True, True)])
def test_layer_kernel_finite_differences(mode, reverse, packed):
    from fastgrad._core.ops_rnn import rnn_layer
    rng = np.random.default_rng(mode * 4 + reverse * 2 + packed)
    G = (1, 1, 4, 3)[mode]
    H, I, B = 3, 2, 3
    bs = np.array([3, 2, 2, 1]) if packed else np.array([3, 3, 3])
    total = int(bs.sum())
    proj = mode == 2 and packed and reverse
    P = 2 if proj else H
    arrays = [rng.standard_normal((total, I)), rng.standard_normal((B, P)) * 0.5,
              rng.standard_normal((G * H, I)) * 0.6, rng.standard_normal((G * H, P)) * 0.6,
              rng.standard_normal(G * H) * 0.3, rng.standard_normal(G * H) * 0.3]
    if mode == 2:
        arrays.append(rng.standard_normal((B, H)) * 0.5)
    if proj:
        arrays.append(rng.standard_normal((P, H)) * 0.6)
    if mode == 1:      # keep relu's pre-activations away from the kink
        arrays[4] = arrays[4] + 0.5

    def fn(x, h0, w_ih, w_hh, b_ih, b_hh, *rest):
        c0 = rest[0] if mode == 2 else None
        w_hr = rest[1] if proj else None
        out, hn, cn = rnn_layer(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, bs, reverse)
        parts = [out.reshape(-1), (hn * 1.3).reshape(-1)]
        if cn is not None:
            parts.append((cn * 0.7).reshape(-1))
        return fg.cat(parts)

    check_grad(fn, arrays)


@pytest.mark.skipif(REFERENCE, reason="fastgrad's layer kernel")
def test_module_finite_differences_through_dropout_free_stack():
    fg.manual_seed(0)
    m = fg.nn.GRU(2, 3, num_layers=2, bidirectional=True, dtype=fg.float64)
    rng = np.random.default_rng(3)
    check_grad(lambda x, h: m(x, h)[0], [rng.standard_normal((4, 2, 2)),
                                         rng.standard_normal((4, 2, 3))])


# --- bad input -------------------------------------------------------------------------------------

def test_wrong_input_size_raises_torchs_message():
    m = nn.LSTM(4, 3)
    with pytest.raises(RuntimeError, match=r"input.size\(-1\) must be equal to input_size. "
                                           r"Expected 4, got 3"):
        m(fg.zeros(5, 2, 3))


def test_wrong_hidden_shape_raises():
    m = nn.LSTM(4, 3)
    with pytest.raises(RuntimeError, match=r"Expected hidden\[0\] size \(1, 2, 3\), got "
                                           r"\[1, 3, 3\]"):
        m(fg.zeros(5, 2, 4), (fg.zeros(1, 3, 3), fg.zeros(1, 2, 3)))
    with pytest.raises(RuntimeError, match=r"Expected hidden\[1\] size \(1, 2, 3\), got "
                                           r"\[1, 2, 4\]"):
        m(fg.zeros(5, 2, 4), (fg.zeros(1, 2, 3), fg.zeros(1, 2, 4)))
    with pytest.raises(RuntimeError, match=r"Expected hidden size \(1, 2, 3\), got \[2, 2, 3\]"):
        nn.GRU(4, 3)(fg.zeros(5, 2, 4), fg.zeros(2, 2, 3))
    with pytest.raises(RuntimeError, match="unbatched 2-D input, hx and cx should also be 2-D"):
        m(fg.zeros(2, 4), (fg.zeros(1, 2, 3), fg.zeros(1, 2, 3)))


def test_bad_input_rank_and_constructor_arguments():
    with pytest.raises(ValueError, match="Expected input to be 2D or 3D, got 4D"):
        nn.LSTM(4, 3)(fg.zeros(1, 5, 2, 4))
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        nn.LSTM(4, 3, proj_size=3)
    with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
        nn.GRU(4, 3, proj_size=2)
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        nn.GRU(4, 3, dropout=1.5)
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        nn.RNN(4, 3, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="does not match weight dtype"):
        nn.LSTM(4, 3)(fg.zeros(5, 2, 4, dtype=fg.float64))


def test_cell_bad_input():
    c = nn.LSTMCell(4, 3)
    with pytest.raises(RuntimeError, match="input has inconsistent input_size: got 3 expected 4"):
        c(fg.zeros(2, 3))
    with pytest.raises(RuntimeError, match="Input batch size 2 doesn't match hidden0 batch size 3"):
        c(fg.zeros(2, 4), (fg.zeros(3, 3), fg.zeros(3, 3)))


def test_enforce_sorted_rejects_unsorted_lengths():
    with pytest.raises(RuntimeError, match="must be sorted in decreasing order"):
        rnn_utils.pack_padded_sequence(fg.zeros(5, 3, 2), [2, 5, 1])


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own limitation")
def test_double_backward_raises_clearly():
    m = nn.LSTM(2, 3, dtype=fg.float64)
    x = fg.randn(4, 1, 2, dtype=fg.float64, requires_grad=True)
    out, _ = m(x)
    (g,) = fg.autograd.grad(out.sum(), x, create_graph=False)
    assert g.shape == x.shape
    out, _ = m(x)
    with pytest.raises(RuntimeError, match="double backward .*recurrent layer is not supported"):
        fg.autograd.grad(out.sum(), x, create_graph=True)


def test_second_backward_without_retain_graph_raises():
    m = nn.GRU(2, 3)
    out, _ = m(fg.randn(4, 1, 2))
    out.sum().backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        out.sum().backward()


# --- packing utilities -----------------------------------------------------------------------------

def test_pad_sequence_and_pack_sequence_round_trip():
    seqs = [fg.tensor([[1.0], [2.0], [3.0]]), fg.tensor([[4.0]]), fg.tensor([[5.0], [6.0]])]
    padded = rnn_utils.pad_sequence(seqs, batch_first=True, padding_value=-1.0)
    assert padded.squeeze(-1).tolist() == [[1, 2, 3], [4, -1, -1], [5, 6, -1]]
    left = rnn_utils.pad_sequence(seqs, padding_side="left")
    assert left.squeeze(-1).tolist() == [[1, 0, 0], [2, 0, 5], [3, 4, 6]]
    packed = rnn_utils.pack_sequence(seqs, enforce_sorted=False)
    assert packed.batch_sizes.tolist() == [3, 2, 1]
    assert packed.data.squeeze(-1).tolist() == [1, 5, 4, 2, 6, 3]
    assert packed.sorted_indices.tolist() == [0, 2, 1]
    back = rnn_utils.unpack_sequence(packed)
    assert [b.squeeze(-1).tolist() for b in back] == [[1, 2, 3], [4], [5, 6]]
    out, lens = rnn_utils.pad_packed_sequence(packed, total_length=4)
    assert tuple(out.shape) == (4, 3, 1) and lens.tolist() == [3, 1, 2]


# --- the example -----------------------------------------------------------------------------------

@pytest.mark.skipif(REFERENCE, reason="runs the fastgrad example")
def test_char_lstm_example_loss_falls():
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = child_env()
    out = subprocess.run([sys.executable, os.path.join(root, "examples", "char_lstm.py"), "40"],
                         capture_output=True, text=True, timeout=300, check=True, env=env).stdout
    losses = [float(ln.split()[-1]) for ln in out.splitlines() if ln.startswith("step")]
    assert len(losses) == 10
    assert losses[-1] < losses[0] - 0.3
    assert "sample: 'The " in out


def test_empty_sequence_raises_and_dropout_only_in_training():
    with pytest.raises(RuntimeError, match="Expected sequence length to be larger than 0"):
        nn.GRU(3, 4)(fg.randn(0, 2, 3))
    fg.manual_seed(0)
    m = nn.LSTM(3, 4, num_layers=2, dropout=0.5)
    x = fg.randn(5, 2, 3)
    m.eval()
    a, b = m(x)[0].detach().numpy(), m(x)[0].detach().numpy()
    np.testing.assert_array_equal(a, b)
    m.train()
    assert not np.allclose(m(x)[0].detach().numpy(), a)


@pytest.mark.skipif(REFERENCE, reason="fastgrad's saved-tensor check")
def test_modifying_input_or_weight_in_place_before_backward_raises():
    m = nn.GRU(2, 3)
    x = fg.randn(4, 1, 2, requires_grad=True)
    y = x * 1.0
    out, _ = m(y)
    with fg.no_grad():
        y.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()
    out, _ = m(x)
    with fg.no_grad():
        m.weight_hh_l0.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()
