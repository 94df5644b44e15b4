"""set_num_threads / get_num_threads: one thread count for fastgrad's loops and NumPy's BLAS.

Note [One thread count]
fastgrad's parallel loops run on its thread team (kernels.team_run, team.h); matrix products
run in NumPy's BLAS (OpenBLAS), which keeps its own pool. Sized apart, 2 cores can carry 4 busy
threads and every step slows down, so set_num_threads(n) sizes both: fastgrad's team directly,
BLAS through threadpoolctl when it is installed, else through OpenBLAS's own
`*openblas_set_num_threads*` entry point found in the loaded library. The default, like torch's,
is OMP_NUM_THREADS when set, else the cores this process may run on.
"""
import ctypes
import os

from fastgrad._core import kernels as _kernels

_OPENBLAS_SETTERS = ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_",
                     "openblas_set_num_threads64_", "scipy_openblas_set_num_threads")
_OPENBLAS_GETTERS = ("openblas_get_num_threads", "scipy_openblas_get_num_threads64_",
                     "openblas_get_num_threads64_", "scipy_openblas_get_num_threads")


def _default_threads():
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _set_blas_threads(n):
    """Size NumPy's BLAS pool to n threads; False when no way to do it was found."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return _set_openblas_ctypes(n)
    threadpool_limits(limits=n, user_api="blas")     # applied now, kept (no `with`)
    return True


def _openblas_libs():
    """The OpenBLAS libraries loaded in this process (NumPy's), as ctypes handles."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return []
    libs = []
    for path in sorted(paths):
        try:
            libs.append(ctypes.CDLL(path))
        except OSError:
            continue
    return libs


def _first(lib, names):
    for name in names:
        fn = getattr(lib, name, None)
        if fn is not None:
            return fn
    return None


def _set_openblas_ctypes(n):
    done = False
    for lib in _openblas_libs():
        fn = _first(lib, _OPENBLAS_SETTERS)
        if fn is not None:
            fn.argtypes = [ctypes.c_int]     # 64-bit-int builds still take a C int here
            fn.restype = None
            fn(n)
            done = True
    return done


def _names(stem):
    """OpenBLAS's spellings of one entry point: plain, and NumPy's scipy-openblas prefixes and
    64-bit-integer suffixes."""
    return (stem, f"scipy_{stem}64_", f"{stem}64_", f"scipy_{stem}")


def _ilp64(lib):
    """Whether this OpenBLAS takes 64-bit integers (its config string says USE64BITINT)."""
    fn = _first(lib, _names("openblas_get_config"))
    if fn is None:
        return None
    fn.argtypes, fn.restype = [], ctypes.c_char_p
    return b"USE64BITINT" in (fn() or b"")


def _hand_blas_hooks():
    """Give _core.blas OpenBLAS's thread-count setter and getter and its cblas_sgemm/dgemm
    (Note [Products on fastgrad's threads] in blas.pyx): NumPy's own OpenBLAS (the one in
    numpy.libs, or the only one loaded), when its integer width is known; otherwise linear's
    products go through np.matmul."""
    import numpy  # noqa: F401  (its BLAS is loaded by now)
    from fastgrad._core import blas
    found = []
    libs = _openblas_libs()
    numpys = [lib for lib in libs if "numpy" in os.path.basename(os.path.dirname(lib._name))]
    for lib in (numpys if len(numpys) == 1 else libs):     # SciPy may bring a second one
        fns = [_first(lib, names) for names in (_OPENBLAS_SETTERS, _OPENBLAS_GETTERS,
                                                _names("cblas_sgemm"), _names("cblas_dgemm"))]
        if all(fn is not None for fn in fns):
            found.append((fns, _ilp64(lib)))
    if len(found) == 1 and found[0][1] is not None:
        fns, ilp64 = found[0]
        blas.install(*[ctypes.cast(fn, ctypes.c_void_p).value for fn in fns], ilp64)


def set_num_threads(int):                   # torch's parameter name
    """Threads fastgrad uses for large elementwise ops, reductions, optimizer updates and linear's
    products, and NumPy's BLAS uses for other matrix products (Note [One thread count]).
    Reductions and updates do not depend on it (a fixed partition of the work). In a process
    forked from one that had imported fastgrad, fastgrad's own loops stay on one thread (Note
    [Threads after fork] in _core/kernels.pyx)."""
    n = int
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise RuntimeError(f"set_num_threads expects an int, but got {type(n).__name__}")
    n = n.__index__()
    if n <= 0:
        raise RuntimeError("set_num_threads expects a positive integer")
    if n > 1 and _kernels.forked():
        import warnings
        warnings.warn("set_num_threads: this process was forked after fastgrad was imported, and "
                      "fastgrad's threads do not exist in a forked child, so its own parallel "
                      "loops stay on one thread here; start worker processes with the 'spawn' "
                      "method to use more", RuntimeWarning, stacklevel=2)
    _kernels.set_threads(n)
    _set_blas_threads(n)


def get_num_threads():
    """The thread count set by set_num_threads (default: OMP_NUM_THREADS, else usable cores);
    1 in a forked child (Note [Threads after fork])."""
    return _kernels.get_threads()


_kernels.set_threads(_default_threads())
_hand_blas_hooks()
