# cython: boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Elementwise loops. Raw pointers in, raw pointers out; no Python objects, no allocation.

Note [Kernel contract]
Callers pass C-contiguous buffers of `n` elements of one floating type, already checked to have
equal shapes (or a scalar operand passed as a double). Loops are written one per op so the
compiler vectorises each; above PAR_MIN elements they split across OpenMP threads with a static
schedule, so every element is computed by the same formula whatever the thread count.
"""
from cython.parallel cimport prange
from libc.math cimport exp, expf, log, logf, sqrt, sqrtf, sin, sinf, cos, cosf, tanh, tanhf
from libc.math cimport fabs, fabsf, pow, powf


cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef void binary_fwd(int op, const floating* a, const floating* b, floating* out,
                     Py_ssize_t n) noexcept nogil:
    """out[i] = a[i] (+ - * /) b[i]"""
    cdef Py_ssize_t i
    cdef bint par = n >= PAR_MIN
    if op == OP_ADD:
        for i in prange(n, schedule="static", use_threads_if=par):
            out[i] = a[i] + b[i]
    elif op == OP_SUB:
        for i in prange(n, schedule="static", use_threads_if=par):
            out[i] = a[i] - b[i]
    elif op == OP_MUL:
        for i in prange(n, schedule="static", use_threads_if=par):
            out[i] = a[i] * b[i]
    elif op == OP_DIV:
        for i in prange(n, schedule="static", use_threads_if=par):
            out[i] = a[i] / b[i]
    elif op == OP_POW:
        for i in prange(n, schedule="static", use_threads_if=par):
            out[i] = powf(a[i], b[i]) if floating is float else pow(a[i], b[i])


cdef inline floating _bin(int op, floating x, floating y) noexcept nogil:
    if op == OP_ADD:
        return x + y
    if op == OP_SUB:
        return x - y
    if op == OP_MUL:
        return x * y
    if op == OP_DIV:
        return x / y
    return powf(x, y) if floating is float else pow(x, y)


cdef void strided_fwd(int op, const floating* a, const floating* b, floating* out,
                      int nd, const Py_ssize_t* shape, const Py_ssize_t* sa,
                      const Py_ssize_t* sb) noexcept nogil:
    """out (C-contiguous, `shape`) = a (op) b, where a and b are read through element strides
    sa, sb (0 on broadcast dimensions). The innermost dimension is a plain loop; the outer ones
    advance an index counter, so any rank and any broadcast works without copies."""
    cdef Py_ssize_t idx[32]
    cdef Py_ssize_t i, inner = shape[nd - 1], ia = sa[nd - 1], ib = sb[nd - 1]
    cdef Py_ssize_t offa = 0, offb = 0, pos = 0
    cdef int d
    for d in range(nd):
        idx[d] = 0
        if shape[d] == 0:
            return
    while True:
        if ia == 1 and ib == 1:
            for i in range(inner):
                out[pos + i] = _bin(op, a[offa + i], b[offb + i])
        elif ia == 0 and ib == 1:
            for i in range(inner):
                out[pos + i] = _bin(op, a[offa], b[offb + i])
        elif ia == 1 and ib == 0:
            for i in range(inner):
                out[pos + i] = _bin(op, a[offa + i], b[offb])
        else:
            for i in range(inner):
                out[pos + i] = _bin(op, a[offa + i * ia], b[offb + i * ib])
        pos += inner
        d = nd - 2
        while d >= 0:
            idx[d] += 1
            offa += sa[d]
            offb += sb[d]
            if idx[d] < shape[d]:
                break
            offa -= sa[d] * shape[d]
            offb -= sb[d] * shape[d]
            idx[d] = 0
            d -= 1
        if d < 0:
            return


cdef void scalar_fwd(int op, const floating* a, double s, floating* out,
                     Py_ssize_t n) noexcept nogil:
    """out[i] = a[i] (op) s, or s (op) a[i] for OP_RSUB / OP_RDIV, in the buffer's precision"""
    cdef Py_ssize_t i
    cdef floating c = <floating>s
    cdef bint par = n >= PAR_MIN
    if op == OP_ADD:
        for i in prange(n, schedule="static", use_threads_if=par):
            out[i] = a[i] + c
    elif op == OP_SUB:
        for i in prange(n, schedule="static", use_threads_if=par):
            out[i] = a[i] - c
    elif op == OP_MUL:
        for i in prange(n, schedule="static", use_threads_if=par):
            out[i] = a[i] * c
    elif op == OP_DIV:
        for i in prange(n, schedule="static", use_threads_if=par):
            out[i] = a[i] / c
    elif op == OP_RSUB:
        for i in prange(n, schedule="static", use_threads_if=par):
            out[i] = c - a[i]
    elif op == OP_RDIV:
        for i in prange(n, schedule="static", use_threads_if=par):
            out[i] = c / a[i]
    elif op == OP_POW:
        if c == 2:
            for i in prange(n, schedule="static", use_threads_if=par):
                out[i] = a[i] * a[i]
        elif floating is float:
            for i in prange(n, schedule="static", use_threads_if=par):
                out[i] = powf(a[i], c)
        else:
            for i in prange(n, schedule="static", use_threads_if=par):
                out[i] = pow(a[i], c)


cdef void unary_fwd(int op, const floating* a, floating* out, Py_ssize_t n) noexcept nogil:
    """out[i] = f(a[i]) for the op's f"""
    cdef Py_ssize_t i
    cdef bint par = n >= PAR_MIN
    if op == OP_NEG:
        for i in prange(n, schedule="static", use_threads_if=par):
            out[i] = -a[i]
    elif op == OP_EXP:
        for i in prange(n, schedule="static", use_threads_if=par):
            out[i] = _exp(a[i])
    elif op == OP_TANH:
        for i in prange(n, schedule="static", use_threads_if=par):
            if floating is float:
                out[i] = tanhf(a[i])
            else:
                out[i] = tanh(a[i])
    elif op == OP_SIGMOID:
        for i in prange(n, schedule="static", use_threads_if=par):
            out[i] = 1 / (1 + _exp(-a[i]))
    elif op == OP_RELU:
        for i in prange(n, schedule="static", use_threads_if=par):
            out[i] = a[i] if a[i] > 0 else (a[i] if a[i] != a[i] else 0)   # NaN passes through
    else:
        _unary_math(op, a, out, n, par)


cdef void _unary_math(int op, const floating* a, floating* out, Py_ssize_t n,
                      bint par) noexcept nogil:
    """log, sqrt, sin, cos, abs, reciprocal"""
    cdef Py_ssize_t i
    for i in prange(n, schedule="static", use_threads_if=par):
        if op == OP_LOG:
            out[i] = logf(a[i]) if floating is float else log(a[i])
        elif op == OP_SQRT:
            out[i] = sqrtf(a[i]) if floating is float else sqrt(a[i])
        elif op == OP_SIN:
            out[i] = sinf(a[i]) if floating is float else sin(a[i])
        elif op == OP_COS:
            out[i] = cosf(a[i]) if floating is float else cos(a[i])
        elif op == OP_ABS:
            out[i] = fabsf(a[i]) if floating is float else fabs(a[i])
        elif op == OP_RECIPROCAL:
            out[i] = 1 / a[i]


cdef void unary_bwd(int op, const floating* g, const floating* y, floating* out,
                    Py_ssize_t n) noexcept nogil:
    """Fused backward from the saved output y:
    tanh: g*(1-y*y); sigmoid: g*y*(1-y); exp: g*y; relu: g*(y>0); reciprocal: -g*y*y"""
    cdef Py_ssize_t i
    cdef bint par = n >= PAR_MIN
    if op == OP_TANH:
        for i in prange(n, schedule="static", use_threads_if=par):
            out[i] = g[i] * (1 - y[i] * y[i])
    elif op == OP_SIGMOID:
        for i in prange(n, schedule="static", use_threads_if=par):
            out[i] = g[i] * y[i] * (1 - y[i])
    elif op == OP_EXP:
        for i in prange(n, schedule="static", use_threads_if=par):
            out[i] = g[i] * y[i]
    elif op == OP_RELU:
        for i in prange(n, schedule="static", use_threads_if=par):
            out[i] = g[i] if y[i] > 0 else 0
    elif op == OP_RECIPROCAL:
        for i in prange(n, schedule="static", use_threads_if=par):
            out[i] = -g[i] * y[i] * y[i]
