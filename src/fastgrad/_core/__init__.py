# Note [OpenMP wait policy]
# libgomp reads its settings once, when it loads (with the kernels module). By default its idle
# threads spin, and a thread that spins at a barrier while its partner waits for a core turns
# every parallel loop into a scheduler time slice on a busy machine: measured here with other
# jobs running, a 1e6-element add took 30 ms on 2 threads against 0.25 ms on 1. Passive waiting
# (sleep at once) costs a futex wake-up per loop instead, a few µs. The user's own
# OMP_WAIT_POLICY / GOMP_SPINCOUNT win; the variable is set only while libgomp loads.
import os as _os

if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        from fastgrad._core import kernels as _kernels  # noqa: F401  (loads libgomp)
    finally:
        del _os.environ["OMP_WAIT_POLICY"]
