# PyTorch's CPU random engine (mt19937) and its per-distribution transforms. See random.pyx.
from libc.stdint cimport uint32_t, uint64_t, int64_t

cdef struct MTState:
    uint32_t state[624]
    uint64_t seed
    int left                    # draws until the next twist, plus one (PyTorch's bookkeeping)
    uint32_t next               # index of the next word of state to temper
    double next_normal          # second Box-Muller value kept by the scalar normal path
    bint has_next_normal

cdef class Engine:
    cdef MTState s

cdef uint32_t mt_u32(MTState* m) noexcept nogil
cdef uint64_t mt_u64(MTState* m) noexcept nogil
