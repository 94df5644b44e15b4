"""The thread team (Note [A team that does not wait for its partners] in _core/team.h): partners
join the loops, results match one thread bit for bit whoever runs which item, loops started from
several Python threads at once or back to back with partners awake or asleep stay correct."""
import threading

import numpy as np
import pytest

import fastgrad
from fastgrad._core import kernels
from fastgrad.nn import functional as F


@pytest.fixture
def two_threads():
    old_threads, old_spin = fastgrad.get_num_threads(), kernels.team_spin()
    fastgrad.set_num_threads(2)
    yield
    fastgrad.set_num_threads(old_threads)
    kernels.team_spin(old_spin)


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_partners_take_items(two_threads):
    """With a partner awake between loops, some items run on it (the loops are not all on the
    caller): 200 back-to-back adds of 8 pieces each."""
    kernels.team_spin(1000)
    x = fastgrad.tensor(_rng().standard_normal(1 << 17).astype(np.float32))
    before = kernels.team_partner_items()
    for _ in range(200):
        x + x
    assert kernels.team_partner_items() > before


_STRESS = """
import sys
import numpy as np
import fastgrad
from fastgrad._core import kernels
sys.path.insert(0, {tests!r})
import test_team
fastgrad.set_num_threads(2)
test_team._back_to_back({spin})
print("ok")
"""


@pytest.mark.parametrize("spin", [0, 1000])
def test_back_to_back_loops_of_different_kinds(spin):
    """Loops of different sizes, item functions and operands one after another (a partner late
    for one loop must not run items of the next with the old description): every result against
    NumPy on one thread. In a process of its own, so that a loop that never finishes fails the
    test instead of hanging the suite."""
    import os
    import subprocess
    import sys
    code = _STRESS.format(tests=os.path.dirname(os.path.abspath(__file__)), spin=spin)
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail("a parallel loop never finished (a partner ran items of the wrong loop?)")
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def _back_to_back(spin):
    kernels.team_spin(spin)
    rng = _rng(1)
    arrays = [rng.standard_normal(n).astype(np.float32) for n in (65536, 70001, 131072, 300000)]
    tensors = [fastgrad.tensor(a) for a in arrays]
    for it in range(300):
        k = it % len(arrays)
        a, t = arrays[k], tensors[k]
        np.testing.assert_array_equal((t * 3.0).numpy(), a * np.float32(3.0))
        np.testing.assert_array_equal((t + t).numpy(), a + a)
        s = t.sum().item()
        assert s == pytest.approx(float(a.astype(np.float64).sum()), rel=1e-5, abs=1e-3)


@pytest.mark.parametrize("spin", [0, 1000])
def test_layers_match_one_thread_bit_for_bit(two_threads, spin):
    """Layer norm, softmax, attention, a linear layer, a convolution and pooling: forward and
    gradients on two threads equal one thread's bits."""
    kernels.team_spin(spin)
    rng = _rng(2)
    x = rng.standard_normal((16, 64, 128)).astype(np.float32)
    img = rng.standard_normal((32, 3, 20, 20)).astype(np.float32)
    w = rng.standard_normal((128, 128)).astype(np.float32) * 0.1
    cw = rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.1

    def run():
        xt = fastgrad.tensor(x, requires_grad=True)
        it = fastgrad.tensor(img, requires_grad=True)
        wt = fastgrad.tensor(w, requires_grad=True)
        ct = fastgrad.tensor(cw, requires_grad=True)
        h = F.layer_norm(F.linear(xt, wt), (128,))
        q = h.reshape(16, 64, 4, 32).transpose(1, 2)
        a = F.scaled_dot_product_attention(q, q, q)
        s = F.softmax(h, -1) + F.softmax(h, 1)
        c = F.max_pool2d(F.conv2d(it, ct, padding=1), 2) + \
            F.avg_pool2d(F.conv2d(it, ct), 2, 1)[..., :10, :10]
        loss = a.square().sum() + s.square().sum() + c.square().sum()
        loss.backward()
        return [loss.detach().numpy(), xt.grad.numpy(), it.grad.numpy(), wt.grad.numpy(),
                ct.grad.numpy()]

    fastgrad.set_num_threads(1)
    one = run()
    fastgrad.set_num_threads(2)
    for _ in range(3):
        for a, b in zip(run(), one):
            np.testing.assert_array_equal(a, b)


def test_loops_from_several_python_threads(two_threads):
    """Python threads starting loops at once: one runs on the team, the others on their own
    threads (never waiting for the team); every result is right."""
    kernels.team_spin(50)
    rng = _rng(3)
    arrays = [rng.standard_normal(200000).astype(np.float32) for _ in range(4)]
    errors = []

    def work(a):
        t = fastgrad.tensor(a)
        try:
            for _ in range(100):
                np.testing.assert_array_equal((t + t).numpy(), a + a)
                np.testing.assert_array_equal(F.relu(t).numpy(), np.maximum(a, 0))
        except AssertionError as e:          # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(a,)) for a in arrays]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung in a parallel loop"
    assert not errors, errors[0]


@pytest.mark.parametrize("bad", [-1, 2e6, float("nan")])
def test_team_spin_checks_its_argument(bad):
    with pytest.raises(ValueError, match="between 0 and 1e6"):
        kernels.team_spin(bad)


def test_team_spin_round_trip():
    old = kernels.team_spin(12.5)
    try:
        assert kernels.team_spin() == 12.5
    finally:
        kernels.team_spin(old)


@pytest.mark.parametrize("value,expected,warns", [("30", 30.0, False), ("abc", 0.0, True),
                                                  ("-5", 0.0, True)])
def test_spin_from_the_environment(value, expected, warns):
    import os
    import subprocess
    import sys
    env = dict(os.environ, FASTGRAD_SPIN_US=value)
    out = subprocess.run([sys.executable, "-c", "import fastgrad; from fastgrad._core import "
                          "kernels; print(kernels.team_spin())"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.strip()) == expected
    assert ("FASTGRAD_SPIN_US" in out.stderr) == warns
