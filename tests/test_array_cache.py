"""Arrays of dead tensors reused for new results (Note [Small array cache] in storage.pyx): an array
anyone can still reach is never reused."""
import gc
import weakref

import numpy as np
import pytest

from _backend import REFERENCE, fg

pytestmark = pytest.mark.skipif(REFERENCE, reason="fastgrad's allocator")


def _churn():
    """Make and drop many small results of the shapes below."""
    x = fg.tensor(np.arange(4, dtype=np.float32))
    for _ in range(200):
        (x * 3 + 1).exp().tanh()


def test_array_kept_by_user_is_not_reused():
    t = fg.tensor(np.arange(4, dtype=np.float32)) * 2
    a = t.numpy()
    del t
    _churn()
    np.testing.assert_array_equal(a, [0, 2, 4, 6])


def test_array_with_weakref_is_not_reused():
    t = fg.tensor(np.arange(4, dtype=np.float32)) * 2
    r = weakref.ref(t.numpy())
    del t
    gc.collect()
    assert r() is None                   # freed, not cached: the weak reference saw it die
    _churn()


def test_read_only_and_view_arrays_are_not_reused():
    base = np.arange(8, dtype=np.float32)
    v = fg.from_numpy(base[:4])
    ro = np.arange(4, dtype=np.float32)
    ro.setflags(write=False)
    t = fg.from_numpy(ro)
    del v, t
    _churn()
    np.testing.assert_array_equal(base, np.arange(8))
    np.testing.assert_array_equal(ro, np.arange(4))


def test_cache_follows_shapes_and_results_stay_right():
    from fastgrad._core import storage
    rng = np.random.default_rng(0)
    for shape in [(4,), (2, 3), (), (4,), (16,), (2, 3)]:
        for dtype in (np.float32, np.float64):
            a = rng.standard_normal(shape).astype(dtype)
            b = rng.standard_normal(shape).astype(dtype)
            for _ in range(3):
                r = (fg.tensor(a) * fg.tensor(b) + 1).tanh()
                np.testing.assert_allclose(r.numpy(), np.tanh(a * b + 1), rtol=1e-6)
                assert r.numpy().shape == shape and r.numpy().dtype == dtype
    assert 0 <= storage._array_cache_size() <= 64
