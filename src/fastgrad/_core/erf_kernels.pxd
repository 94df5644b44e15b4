# erf, erfc and gelu over a float array: the one loop ops_math (erf, erfc) and ops_activation
# (gelu, and the erf in gelu's gradient) run.
cimport cython
from cython cimport floating
from libc.math cimport erf as c_erf, erfc as c_erfc, erff as c_erff, erfcf as c_erfcf

cdef enum:
    ERF_ERF = 0         # libm's erf for the element type (erff for float32)
    ERF_ERFC = 1        # libm's erfc for the element type (erfcf for float32)
    ERF_GELU = 2        # x * 0.5 * (1 + erf(x / sqrt(2))), computed in double, rounded once
    ERF_ERF_WIDE = 3    # erf computed in double, rounded once (gelu's gradient)


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline void erf_loop(const floating* x, floating* out, Py_ssize_t n,    # IN (n,), OUT (n,)
                          int kind) noexcept nogil:
    """out = erf(x), erfc(x) or gelu(x), by kind."""
    cdef Py_ssize_t i
    for i in range(n):
        if kind == ERF_GELU:
            out[i] = <floating>(x[i] * 0.5 * (1.0 + c_erf(x[i] * 0.7071067811865476)))  # 1/sqrt(2)
        elif floating is double or kind == ERF_ERF_WIDE:
            out[i] = <floating>(c_erfc(x[i]) if kind == ERF_ERFC else c_erf(x[i]))
        else:
            out[i] = c_erfcf(x[i]) if kind == ERF_ERFC else c_erff(x[i])
