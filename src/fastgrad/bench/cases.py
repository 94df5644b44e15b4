"""The workload bodies of bench/README.md's table, each written once.

Every `make_*` function takes the library module `lib` (fastgrad, or torch as
a peer) and returns a zero-argument `step()` that does one unit of the
workload; the harness times calls of `step`. Building the step (data, model,
optimizer) is setup and is never timed. The same code runs on every library,
so a difference in the figures is a difference in the libraries.

The `numpy_*` functions are the NumPy-by-hand forms: the same arithmetic
with the gradient written out, the floor an autograd library is measured
against. They return a `step()` too.

This module imports neither fastgrad nor torch: `_child.py` and `_peer.py`
load it by path so that a subprocess measuring torch does not also load
fastgrad.
"""
import functools

import numpy as np

SEED = 0


def _rng(offset=0):
    return np.random.default_rng(SEED + offset)


def _data(shape, offset=0, dtype=np.float32):
    """Fixed-seed standard-normal data, identical for every library."""
    return _rng(offset).standard_normal(shape).astype(dtype)


def _tensor(lib, array, requires_grad=False):
    return lib.tensor(array, requires_grad=requires_grad)


def _seed(lib):
    """Seed the library's own RNG (module init) where it has one."""
    manual_seed = getattr(lib, "manual_seed", None)
    if manual_seed is not None:
        manual_seed(SEED)


# --- W1: a chain of small elementwise ops -----------------------------------

W1_OPS = 100  # ops per step; the figure is per op


def make_w1(lib, n, backward):
    """100 ops cycling y*w, y+w, tanh(y), exp(y) on n-element tensors.

    Forward-only still builds the graph (w requires grad), as the workload
    says; with `backward` the chain is summed, back-propagated, and w.grad
    cleared.
    """
    x = _tensor(lib, _data(n, 1))
    w = _tensor(lib, _data(n, 2), requires_grad=True)
    tanh, exp = lib.tanh, lib.exp

    def forward():
        y = x
        for _i in range(W1_OPS // 4):
            y = exp(tanh(y * w + w))
        return y

    if not backward:
        return forward

    def step():
        forward().sum().backward()
        w.grad = None
    return step


def numpy_w1(n, backward):
    """The same chain with NumPy ufuncs; backward written out by hand."""
    x, w = _data(n, 1), _data(n, 2)

    def forward():
        y = x
        for _i in range(W1_OPS // 4):
            y = np.exp(np.tanh(y * w + w))
        return y

    if not backward:
        return forward

    def step():
        saved = []                          # (y before *w, tanh, exp) per round
        y = x
        for _i in range(W1_OPS // 4):
            t = np.tanh(y * w + w)
            e = np.exp(t)
            saved.append((y, t, e))
            y = e
        float(y.sum())
        g = np.ones_like(y)
        gw = np.zeros_like(w)
        for y_in, t, e in reversed(saved):
            g = g * e                       # d exp
            g = g * (1 - t * t)             # d tanh
            gw += g                         # d (u + w) / dw
            gw += g * y_in                  # d (y * w) / dw
            g = g * w                       # d (y * w) / dy
        return gw
    return step


# --- W2: one large fused-able elementwise expression -------------------------

def make_w2(lib, n):
    """tanh(a*b + c).sum() forward and backward, then grads cleared."""
    a, b, c = (_tensor(lib, _data(n, k), requires_grad=True) for k in (3, 4, 5))
    tanh = lib.tanh

    def step():
        tanh(a * b + c).sum().backward()
        a.grad = b.grad = c.grad = None
    return step


def numpy_w2(n):
    a, b, c = (_data(n, k) for k in (3, 4, 5))

    def step():
        t = np.tanh(a * b + c)
        float(t.sum())
        g = 1 - t * t
        return g * b, g * a, g              # da, db, dc
    return step


# --- W3: matrix product ------------------------------------------------------

def w3_flops(n):
    """Forward n x n x n product (2n^3) plus the two backward products."""
    return 6 * n ** 3


def make_w3(lib, n):
    """C = A @ B; C.backward(G) with a dense G: three full GEMMs (C, dA, dB)."""
    A = _tensor(lib, _data((n, n), 6), requires_grad=True)
    B = _tensor(lib, _data((n, n), 7), requires_grad=True)
    G = _tensor(lib, _data((n, n), 10))

    def step():
        (A @ B).backward(G)
        A.grad = B.grad = None
    return step


def numpy_w3(n):
    A, B, G = _data((n, n), 6), _data((n, n), 7), _data((n, n), 10)

    def step():
        A @ B
        return G @ B.T, A.T @ G                 # dA, dB
    return step


# --- W4-W6: training steps -----------------------------------------------------

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
XOR_Y = np.array([[0], [1], [1], [0]], dtype=np.float32)


def make_w4(lib):
    """One SGD step of a 2-2-1 sigmoid network on XOR with MSE loss."""
    nn = lib.nn
    _seed(lib)
    model = nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 1), nn.Sigmoid())
    loss_fn = nn.MSELoss()
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    X, Y = _tensor(lib, XOR_X), _tensor(lib, XOR_Y)

    def step():
        opt.zero_grad()
        loss_fn(model(X), Y).backward()
        opt.step()
    return step


def make_mlp(lib, sizes, batch, fused=False):
    """One Adam step of a ReLU MLP (sizes[0] -> ... -> classes), cross-entropy.

    W5 is sizes (64, 128, 10) at batch 64; W6 is (784, 256, 256, 10) at 128.
    `fused=True` asks for torch's fused Adam (a second torch column).
    """
    nn = lib.nn
    _seed(lib)
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(fan_in, fan_out))
    model = nn.Sequential(*layers)
    loss_fn = nn.CrossEntropyLoss()
    kwargs = {"fused": True} if fused else {}
    opt = lib.optim.Adam(model.parameters(), lr=1e-3, **kwargs)
    X = _tensor(lib, _data((batch, sizes[0]), 8))
    y = _tensor(lib, _rng(9).integers(0, sizes[-1], size=batch).astype(np.int64))

    def step():
        opt.zero_grad()
        loss_fn(model(X), y).backward()
        opt.step()
    return step


def mlp_products(sizes, batch):
    """Only the matrix products of one make_mlp step, in NumPy: per layer the forward product
    and the weight gradient, and the input gradient for every layer but the first."""
    X = _data((batch, sizes[0]), 8)
    Ws = [_data((fan_out, fan_in), 11 + i) for i, (fan_in, fan_out)
          in enumerate(zip(sizes[:-1], sizes[1:]))]
    Gs = [_data((batch, W.shape[0]), 21 + i) for i, W in enumerate(Ws)]

    def step():
        h = X
        acts = []
        for W in Ws:
            acts.append(h)
            h = h @ W.T
        for i, (W, G, a) in enumerate(zip(Ws, Gs, acts)):
            G.T @ a                              # weight gradient
            if i:
                G @ W                            # gradient for the layer's input
    return step


def numpy_mlp(sizes, batch, hidden="relu", loss="ce", optimizer="adam", lr=1e-3,
              X=None, Y=None):
    """The same training step with forward, backward and update by hand.

    Linear layers store W as (fan_in, fan_out); hidden activations are ReLU
    or sigmoid (W4 also puts a sigmoid on the output). Loss is softmax
    cross-entropy over integer labels or MSE; the update is Adam or SGD.
    """
    rng = _rng(10)
    Ws = [rng.uniform(-1, 1, (i, o)).astype(np.float32) / np.sqrt(i)
          for i, o in zip(sizes[:-1], sizes[1:])]
    bs = [np.zeros(o, dtype=np.float32) for o in sizes[1:]]
    params = Ws + bs
    if X is None:
        X = _data((batch, sizes[0]), 8)
        Y = _rng(9).integers(0, sizes[-1], size=batch)
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    t = [0]
    sigmoid_out = loss == "mse"

    def act(z):
        return np.maximum(z, 0) if hidden == "relu" else 1 / (1 + np.exp(-z))

    def act_grad(a):                         # in terms of the activation a
        return (a > 0).astype(np.float32) if hidden == "relu" else a * (1 - a)

    def step():
        acts = [X]
        for i, (W, b) in enumerate(zip(Ws, bs)):
            z = acts[-1] @ W + b
            last = i == len(Ws) - 1
            acts.append(z if last and not sigmoid_out else act(z))
        out = acts[-1]
        if loss == "ce":
            e = np.exp(out - out.max(axis=1, keepdims=True))
            p = e / e.sum(axis=1, keepdims=True)
            float(-np.log(p[np.arange(batch), Y]).mean())
            g = p
            g[np.arange(batch), Y] -= 1
            g /= batch
        else:
            float(((out - Y) ** 2).mean())
            g = 2 * (out - Y) / out.size * act_grad(out)
        grads_W, grads_b = [], []
        for i in reversed(range(len(Ws))):
            grads_W.append(acts[i].T @ g)
            grads_b.append(g.sum(axis=0))
            if i:
                g = (g @ Ws[i].T) * act_grad(acts[i])
        grads = grads_W[::-1] + grads_b[::-1]
        if optimizer == "sgd":
            for p, gp in zip(params, grads):
                p -= lr * gp
            return
        t[0] += 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        c1, c2 = 1 - b1 ** t[0], 1 - b2 ** t[0]
        for p, gp, mp, vp in zip(params, grads, m, v):
            mp *= b1
            mp += (1 - b1) * gp
            vp *= b2
            vp += (1 - b2) * gp * gp
            p -= lr * (mp / c1) / (np.sqrt(vp / c2) + eps)
    return step


def numpy_w4():
    return numpy_mlp((2, 2, 1), 4, hidden="sigmoid", loss="mse", optimizer="sgd",
                     lr=0.1, X=XOR_X, Y=XOR_Y)


# --- W9: a very long chain ------------------------------------------------------

def w9_chain(lib, n):
    """Build an n-op chain on a 1-element tensor (alternating * and +).

    Returns (leaf, output). Kept out of the timing harness: _child.py times
    forward, backward and freeing separately, in a subprocess.
    """
    x = _tensor(lib, np.ones(1, dtype=np.float32), requires_grad=True)
    y = x
    for _i in range(n // 2):
        y = y * 1.0001
        y = y + 0.0001
    return x, y


# --- W11: one SGD step of a LeNet-style CNN ------------------------------------------------------

W11_BATCH = 64


def make_lenet(lib):
    """The LeNet-style network of W11 and examples/lenet_digits.py: 1x28x28 in, 10 logits out."""
    nn = lib.nn
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


def make_w11(lib, batch=W11_BATCH):
    """One SGD step of the LeNet-style CNN, cross-entropy, batch 64 of 1x28x28."""
    _seed(lib)
    model = make_lenet(lib)
    loss_fn = lib.nn.CrossEntropyLoss()
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    X = _tensor(lib, _data((batch, 1, 28, 28), 11))
    y = _tensor(lib, _rng(12).integers(0, 10, size=batch).astype(np.int64))

    def step():
        opt.zero_grad()
        loss_fn(model(X), y).backward()
        opt.step()
    return step


# --- W13: a transformer encoder's training step ------------------------------------------------

W13_BATCH, W13_SEQ, W13_DIM, W13_HEADS, W13_FF, W13_CLASSES = 16, 64, 128, 4, 256, 10


def make_w13(lib):
    """One AdamW step of a 2-layer TransformerEncoder (d_model 128, 4 heads, feed-forward 256,
    dropout 0, batch_first), batch 16 of 64 positions; mean over positions, a Linear head and
    cross-entropy."""
    nn = lib.nn
    _seed(lib)
    layer = nn.TransformerEncoderLayer(W13_DIM, W13_HEADS, W13_FF, dropout=0.0,
                                       batch_first=True)
    encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    head = nn.Linear(W13_DIM, W13_CLASSES)
    opt = lib.optim.AdamW(list(encoder.parameters()) + list(head.parameters()), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    X = _tensor(lib, _data((W13_BATCH, W13_SEQ, W13_DIM), 13))
    y = _tensor(lib, _rng(14).integers(0, W13_CLASSES, size=W13_BATCH).astype(np.int64))

    def step():
        opt.zero_grad()
        loss_fn(head(encoder(X).mean(1)), y).backward()
        opt.step()
    return step


# --- W14: one DataLoader epoch over an in-memory TensorDataset ---------------------------------

W14_ROWS, W14_FEATURES, W14_BATCH = 60000, 784, 128


@functools.lru_cache(maxsize=1)
def w14_arrays(rows=W14_ROWS):
    """MNIST-sized data: rows x 784 float32 features and int64 labels (made once per process
    and shared by its columns through from_numpy, so that no column pays for the others'
    copies)."""
    x = np.empty((rows, W14_FEATURES), dtype=np.float32)
    x[:] = _rng(14).standard_normal((1, W14_FEATURES), dtype=np.float32)
    x += np.arange(rows, dtype=np.float32)[:, None]
    y = (np.arange(rows, dtype=np.int64) * 7) % 10
    return x, y


def w14_bytes(x, y):
    """Bytes an epoch must move: every row and label read once and written once."""
    return 2 * (x.nbytes + y.nbytes)


def make_w14(lib, rows):
    """One epoch of DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True) over
    w14_arrays(rows)."""
    x, y = w14_arrays(rows)
    data = lib.utils.data
    loader = data.DataLoader(data.TensorDataset(lib.from_numpy(x), lib.from_numpy(y)),
                             batch_size=W14_BATCH, shuffle=True)

    def step():
        for _xb, _yb in loader:
            pass
    return step


def numpy_w14_floor(rows):
    """The memory floor: copying the epoch's bytes once, contiguously, into warm buffers."""
    x, y = w14_arrays(rows)
    xd, yd = np.empty_like(x), np.empty_like(y)

    def step():
        np.copyto(xd, x)
        np.copyto(yd, y)
    return step


# --- W12: one Adam step of an LSTM classifier -------------------------------------------------

W12_SEQ, W12_BATCH, W12_IN, W12_HIDDEN, W12_CLASSES = 35, 32, 64, 128, 10


def make_w12(lib):
    """One Adam step of LSTM(64, 128) over 35 time steps at batch 32 (time-major input), a
    Linear(128, 10) head on the last output, cross-entropy."""
    nn = lib.nn
    _seed(lib)
    lstm, head = nn.LSTM(W12_IN, W12_HIDDEN), nn.Linear(W12_HIDDEN, W12_CLASSES)
    params = list(lstm.parameters()) + list(head.parameters())
    opt = lib.optim.Adam(params, lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    X = _tensor(lib, _data((W12_SEQ, W12_BATCH, W12_IN), 12))
    y = _tensor(lib, _rng(13).integers(0, W12_CLASSES, size=W12_BATCH).astype(np.int64))

    def step():
        opt.zero_grad()
        out, _ = lstm(X)
        loss_fn(head(out[-1]), y).backward()
        opt.step()
    return step
