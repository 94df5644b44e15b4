"""PyTorch's CPU random streams, bit for bit: the mt19937 engine and the transform each
distribution applies to its words.

Note [PyTorch's streams]
A seeded PyTorch script prints the same numbers under fastgrad because every draw below takes the
same 32-bit words from the same engine and turns them into values with the same arithmetic:
- engine: mt19937 seeded from the low 32 bits of the seed (Knuth's 1812433253 recurrence), with
  PyTorch's bookkeeping (`left` counts down to the next twist, so state round-trips through
  get_state/set_state exactly). A 64-bit draw is two words, the first one the high half.
- PyTorch's build fuses a multiply feeding an add into one fused multiply-add; this module is
  compiled with -ffp-contract=off and writes those fma calls out, so every rounding is the same.
- uniform float32: the low 24 bits of one word times 2^-24; float64: the low 53 bits of a 64-bit
  draw times 2^-53; then fma(x, to - from, from), a value equal to `to` after rounding becomes
  `from`.
- normal: tensors of >= 16 contiguous elements draw all uniforms first and run Box-Muller on
  blocks of 16 (random_boxmuller.h); a last partial block draws 16 fresh uniforms and redoes the
  last 16 elements. Smaller tensors take the scalar path: two float64 uniforms give
  r = sqrt(-2 log1p(-u2)), theta = 2 pi u1, r cos(theta) is returned and r sin(theta) is kept for
  the next scalar draw (reset by manual_seed, part of the saved state); fma(value, std, mean).
- integers in [base, base + range): a 64-bit draw when range >= 2^28, else a 32-bit one, modulo
  range. randperm: Fisher-Yates swapping i with i + (word % (n - i)) below n = 2^32 / 20, the
  "inside-out" variant with 64-bit draws above.
- exponential: -1/lambda * log1p(-u) with a float64 uniform; bernoulli with a float64 p (or a
  scalar p): float64 uniform < p; with a float32 p tensor: float32 uniform < p.
- log_normal_: exp of the scalar normal path; cauchy_: fma(sigma, tan(pi (u - 1/2)), median);
  geometric_: ceil(log u / log1p(-p)); all from float64 uniforms, one per element.
- multinomial with replacement: float64 uniforms searched in the normalised cumulative sums.
- float16 results are computed in float32 (or float64, then rounded to float32 first), as
  PyTorch computes them and builds c10::Half from a float (_sampling.py).
Every kernel is serial (as PyTorch's are): nogil C loops over raw pointers of C-contiguous
buffers, called with the GIL held -- the GIL is what serialises two threads drawing from one
generator (PyTorch takes a mutex), so concurrent draws cannot tear the state. The Box-Muller blocks could split across threads without changing a bit, but on a
loaded two-core machine a parallel region cost more than it saved (1e6 float32: 2 ms serial
against 25 ms with two threads while other processes held the cores), so they stay serial.
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport sqrt, log1p, log, sin, cos, tan, exp, ceil, fma
from libc.stdint cimport uint32_t, uint64_t, int64_t, uint8_t, int32_t
from libc.string cimport memcpy

cnp.import_array()

cdef extern from "random_boxmuller.h" nogil:
    void fg_bm16_f32(float* data, int64_t nblocks, float mean, float std)
    void fg_bm16_f64(double* data, int64_t nblocks, double mean, double std)
    void fg_affine_f32(float* p, int64_t n, float span, float lo, float hi)
    void fg_affine_f64(double* p, int64_t n, double span, double lo, double hi)

DEF N = 624
DEF M = 397
cdef uint32_t MATRIX_A = 0x9908b0df
cdef uint32_t UPPER = 0x80000000
cdef uint32_t LOWER = 0x7fffffff
cdef double TWO_PI = 2.0 * 3.14159265358979323846
DEFAULT_SEED = 67280421310721           # a fresh torch.Generator()'s seed
STATE_BYTES = 5056                       # the size of PyTorch's CPU generator state tensor


cdef void mt_seed(MTState* m, uint64_t seed) noexcept nogil:
    cdef int j
    m.seed = seed
    m.state[0] = <uint32_t>(seed & 0xffffffffu)
    for j in range(1, N):
        m.state[j] = <uint32_t>(1812433253u * (m.state[j - 1] ^ (m.state[j - 1] >> 30)) + j)
    m.left = 1
    m.next = 0
    m.has_next_normal = 0
    m.next_normal = 0.0


cdef inline uint32_t twist(uint32_t u, uint32_t v) noexcept nogil:
    return (((u & UPPER) | (v & LOWER)) >> 1) ^ (MATRIX_A if (v & 1) else 0)


cdef void mt_regenerate(MTState* m) noexcept nogil:
    cdef uint32_t* p = m.state
    cdef int j
    for j in range(N - M):
        p[j] = p[j + M] ^ twist(p[j], p[j + 1])
    for j in range(N - M, N - 1):
        p[j] = p[j + M - N] ^ twist(p[j], p[j + 1])
    p[N - 1] = p[M - 1] ^ twist(p[N - 1], p[0])
    m.left = N
    m.next = 0


cdef inline uint32_t temper(uint32_t y) noexcept nogil:
    y ^= y >> 11
    y ^= (y << 7) & 0x9d2c5680u
    y ^= (y << 15) & 0xefc60000u
    y ^= y >> 18
    return y


cdef uint32_t mt_u32(MTState* m) noexcept nogil:
    m.left -= 1
    if m.left == 0:
        mt_regenerate(m)
    cdef uint32_t y = m.state[m.next]
    m.next += 1
    return temper(y)


cdef uint64_t mt_u64(MTState* m) noexcept nogil:
    cdef uint64_t hi = mt_u32(m)
    cdef uint64_t lo = mt_u32(m)
    return (hi << 32) | lo


cdef void mt_fill(MTState* m, uint32_t* out, int64_t n) noexcept nogil:
    """n consecutive words, the same as n calls of mt_u32 (runs between twists temper in a
    vectorisable loop)."""
    cdef int64_t i = 0, k, take
    cdef uint32_t* src
    while i < n:
        if m.left == 1:
            out[i] = mt_u32(m)
            i += 1
            continue
        take = m.left - 1
        if take > n - i:
            take = n - i
        src = m.state + m.next
        for k in range(take):
            out[i + k] = temper(src[k])
        m.next += <uint32_t>take
        m.left -= <int>take
        i += take


ctypedef fused real:
    float
    double


cdef inline double u64_to_unit(uint64_t v) noexcept nogil:
    return <double>(v & ((<uint64_t>1 << 53) - 1)) * (1.0 / 9007199254740992.0)


cdef inline float u32_to_unit(uint32_t v) noexcept nogil:
    return <float>(v & 0xffffffu) * (<float>1.0 / <float>16777216.0)


cdef double normal_scalar(MTState* m) noexcept nogil:
    """One standard normal from the scalar path (keeps the sine half for the next call)."""
    cdef double u1, u2, r, theta
    if m.has_next_normal:
        m.has_next_normal = 0
        return m.next_normal
    u1 = u64_to_unit(mt_u64(m))
    u2 = u64_to_unit(mt_u64(m))
    r = sqrt(-2.0 * log1p(-u2))
    theta = TWO_PI * u1
    m.next_normal = r * sin(theta)
    m.has_next_normal = 1
    return r * cos(theta)


cdef void unit_f32(MTState* m, float* out, int64_t n) noexcept nogil:
    cdef uint32_t* w = <uint32_t*>out
    cdef int64_t i
    mt_fill(m, w, n)
    for i in range(n):
        out[i] = u32_to_unit(w[i])


cdef void unit_f64(MTState* m, double* out, int64_t n) noexcept nogil:
    cdef uint32_t* w = <uint32_t*>out
    cdef uint64_t v
    cdef int64_t i
    mt_fill(m, w, 2 * n)
    for i in range(n):
        v = (<uint64_t>w[2 * i] << 32) | w[2 * i + 1]
        out[i] = u64_to_unit(v)


cdef class Engine:
    """The state of one generator. fastgrad.Generator subclasses it."""

    def __cinit__(self, *args, **kwargs):
        mt_seed(&self.s, DEFAULT_SEED)

    def _manual_seed(self, seed):
        mt_seed(&self.s, <uint64_t>seed)

    def _initial_seed(self):
        return self.s.seed

    def _u32(self):
        return mt_u32(&self.s)

    def _u64(self):
        return mt_u64(&self.s)

    def _get_state(self):
        """PyTorch's byte layout: seed, left, seeded, next, the 624 words (each in 8 bytes), then
        the kept normal (x, y, rho, valid) and an unused float32 slot."""
        cdef cnp.ndarray out = np.zeros(STATE_BYTES, dtype=np.uint8)
        cdef uint8_t* p = <uint8_t*>cnp.PyArray_DATA(out)
        cdef int32_t i32
        cdef uint64_t u64
        cdef int j
        memcpy(p, &self.s.seed, 8)
        i32 = self.s.left
        memcpy(p + 8, &i32, 4)
        i32 = 1
        memcpy(p + 12, &i32, 4)
        u64 = self.s.next
        memcpy(p + 16, &u64, 8)
        for j in range(N):
            u64 = self.s.state[j]
            memcpy(p + 24 + 8 * j, &u64, 8)
        if self.s.has_next_normal:
            memcpy(p + 5024, &self.s.next_normal, 8)
            i32 = 1
            memcpy(p + 5040, &i32, 4)
        return out

    def _set_state(self, cnp.ndarray state):
        cdef const uint8_t* p
        cdef int32_t left, seeded, valid
        cdef uint64_t nxt, u64
        cdef int j
        state = np.ascontiguousarray(state, dtype=np.uint8)
        if state.shape[0] != STATE_BYTES and state.shape[0] != STATE_BYTES - 8:
            raise RuntimeError(f"Expected either a THGeneratorState of size {STATE_BYTES - 8} or "
                               f"a CPUGeneratorImplState of size {STATE_BYTES} but found the "
                               f"input RNG state size to be {state.shape[0]}; pass a tensor "
                               f"returned by get_state()")
        p = <const uint8_t*>cnp.PyArray_DATA(state)
        memcpy(&left, p + 8, 4)
        memcpy(&seeded, p + 12, 4)
        memcpy(&nxt, p + 16, 8)
        # PyTorch's validity test, plus next + left <= N + 1 (true of every state the engine
        # reaches) so a crafted state cannot send a draw past the 624 words
        if not (seeded == 1 and 0 < left <= N and nxt <= N and nxt + <uint64_t>left <= N + 1):
            raise RuntimeError("Invalid mt19937 state: the state tensor is not one returned by "
                               "get_state()")
        memcpy(&self.s.seed, p, 8)
        self.s.left = left
        self.s.next = <uint32_t>nxt
        for j in range(N):
            memcpy(&u64, p + 24 + 8 * j, 8)
            self.s.state[j] = <uint32_t>u64
        memcpy(&valid, p + 5040, 4)
        self.s.has_next_normal = valid != 0
        memcpy(&self.s.next_normal, p + 5024, 8)


# -- kernels: each fills a C-contiguous array in place ------------------------------------------

cdef void _unit(MTState* m, real* out, int64_t n) noexcept nogil:
    if real is float:
        unit_f32(m, out, n)
    else:
        unit_f64(m, out, n)


cdef void _uniform(MTState* m, real* p, int64_t n, real lo, real hi) noexcept nogil:
    _unit(m, p, n)
    if lo == 0 and hi == 1:
        return
    if real is float:
        fg_affine_f32(p, n, hi - lo, lo, hi)
    else:
        fg_affine_f64(p, n, hi - lo, lo, hi)


def uniform_(Engine g, cnp.ndarray out, double low, double high):
    """Uniform on [low, high) into float32 or float64 `out`."""
    cdef int64_t n = out.size
    cdef float* pf
    cdef double* pd
    if out.dtype == np.float32:
        pf = <float*>cnp.PyArray_DATA(out)
        _uniform(&g.s, pf, n, <float>low, <float>high)
    else:
        pd = <double*>cnp.PyArray_DATA(out)
        _uniform(&g.s, pd, n, low, high)


cdef void _box_muller(real* p, int64_t nblocks, real mean, real std) noexcept nogil:
    if real is float:
        fg_bm16_f32(p, nblocks, mean, std)
    else:
        fg_bm16_f64(p, nblocks, mean, std)


cdef void _normal_blocks(MTState* m, real* p, int64_t n, real mean, real std) noexcept nogil:
    """PyTorch's route for >= 16 contiguous elements: all uniforms, Box-Muller per 16, and a
    partial last block redone from 16 fresh uniforms over the last 16 elements."""
    _unit(m, p, n)
    _box_muller(p, n // 16, mean, std)
    if n % 16:
        _unit(m, p + n - 16, 16)
        _box_muller(p + n - 16, 1, mean, std)


def normal_(Engine g, cnp.ndarray out, double mean, double std, bint blocks=True):
    """Normal(mean, std) into float32 or float64 `out`: blocks of 16 from 16 elements up, or the
    scalar path throughout when `blocks` is false (PyTorch's route for non-contiguous tensors)."""
    cdef int64_t n = out.size, i
    cdef float* pf
    cdef double* pd
    cdef bint f32 = out.dtype == np.float32
    if n >= 16 and blocks:
        if f32:
            pf = <float*>cnp.PyArray_DATA(out)
            _normal_blocks(&g.s, pf, n, <float>mean, <float>std)
        else:
            pd = <double*>cnp.PyArray_DATA(out)
            _normal_blocks(&g.s, pd, n, mean, std)
        return
    if f32:
        pf = <float*>cnp.PyArray_DATA(out)
        for i in range(n):
            pf[i] = <float>fma(normal_scalar(&g.s), std, mean)
    else:
        pd = <double*>cnp.PyArray_DATA(out)
        for i in range(n):
            pd[i] = fma(normal_scalar(&g.s), std, mean)


def integers_(Engine g, cnp.ndarray out, uint64_t modulus, int64_t base, bint wide):
    """int64 `out`: base + word % modulus, words of 64 bits when `wide` (modulus 0: the whole
    64-bit word)."""
    cdef int64_t n = out.size, i
    cdef int64_t* p = <int64_t*>cnp.PyArray_DATA(out)
    if wide:
        for i in range(n):
            p[i] = <int64_t>((mt_u64(&g.s) % modulus) + <uint64_t>base) if modulus \
                else <int64_t>mt_u64(&g.s)
    else:
        for i in range(n):
            p[i] = <int64_t>(<uint64_t>(mt_u32(&g.s) % modulus) + <uint64_t>base)


def randperm(Engine g, int64_t n):
    """A permutation of range(n) as int64."""
    cdef cnp.ndarray out = np.arange(n, dtype=np.int64)
    cdef int64_t* p = <int64_t*>cnp.PyArray_DATA(out)
    cdef int64_t i, z, t
    if n < <int64_t>(4294967295u // 20):
        for i in range(n - 1):
            z = <int64_t>(mt_u32(&g.s) % <uint64_t>(n - i))
            t = p[i]
            p[i] = p[z + i]
            p[z + i] = t
    else:
        for i in range(n):
            z = <int64_t>(mt_u64(&g.s) % <uint64_t>(i + 1))
            p[i] = p[z]
            p[z] = i
    return out


def exponential_(Engine g, cnp.ndarray out, double lambd):
    cdef int64_t n = out.size, i
    cdef double scale = -1.0 / lambd
    cdef float* pf
    cdef double* pd
    if out.dtype == np.float32:
        pf = <float*>cnp.PyArray_DATA(out)
        for i in range(n):
            pf[i] = <float>(scale * log1p(-u64_to_unit(mt_u64(&g.s))))
    else:
        pd = <double*>cnp.PyArray_DATA(out)
        for i in range(n):
            pd[i] = scale * log1p(-u64_to_unit(mt_u64(&g.s)))


DEF PI = 3.14159265358979323846


def double_draws_(Engine g, cnp.ndarray out, int kind, double a, double b):
    """float64 `out`, one draw per element in order: kind 0 log-normal exp(N(a, b)) (the scalar
    normal path, kept sine included), 1 Cauchy a + b tan(pi (u - 1/2)), 2 geometric with
    success probability a: ceil(log u / log1p(-a))."""
    cdef int64_t n = out.size, i
    cdef double* p = <double*>cnp.PyArray_DATA(out)
    cdef double denom = log1p(-a)
    if kind == 0:
        for i in range(n):
            p[i] = exp(fma(normal_scalar(&g.s), b, a))
    elif kind == 1:
        for i in range(n):
            p[i] = fma(b, tan(PI * (u64_to_unit(mt_u64(&g.s)) - 0.5)), a)
    else:
        for i in range(n):
            p[i] = ceil(log(u64_to_unit(mt_u64(&g.s))) / denom)


def bernoulli_scalar(Engine g, cnp.ndarray out, double p):
    """uint8 `out`: float64 uniform < p."""
    cdef int64_t n = out.size, i
    cdef uint8_t* o = <uint8_t*>cnp.PyArray_DATA(out)
    for i in range(n):
        o[i] = u64_to_unit(mt_u64(&g.s)) < p


def bernoulli_tensor(Engine g, cnp.ndarray out, cnp.ndarray probs):
    """uint8 `out` from same-shaped contiguous probs: float64 probs compare a float64 uniform,
    float32 probs a float32 one."""
    cdef int64_t n = out.size, i
    cdef uint8_t* o = <uint8_t*>cnp.PyArray_DATA(out)
    cdef const double* pd
    cdef const float* pf
    if probs.dtype == np.float64:
        pd = <const double*>cnp.PyArray_DATA(probs)
        for i in range(n):
            o[i] = u64_to_unit(mt_u64(&g.s)) < pd[i]
    else:
        pf = <const float*>cnp.PyArray_DATA(probs)
        for i in range(n):
            o[i] = u32_to_unit(mt_u32(&g.s)) < pf[i]


cdef void _cumulative_draws(MTState* m, const real* row, real* cum, int64_t k, int64_t n_sample,
                            int64_t* out) noexcept nogil:
    cdef real total = 0
    cdef int64_t j, lo, hi, mid
    cdef double u
    for j in range(k):
        total += row[j]
        cum[j] = total
    for j in range(k):
        cum[j] /= total
    cum[k - 1] = 1
    for j in range(n_sample):
        u = u64_to_unit(mt_u64(m))
        lo = 0
        hi = k
        while hi - lo > 0:
            mid = lo + (hi - lo) // 2
            if cum[mid] < u:
                lo = mid + 1
            else:
                hi = mid
        out[j] = lo


def multinomial_replacement(Engine g, cnp.ndarray probs, int64_t n_sample):
    """(rows, k) contiguous float32/float64 probs (checked by the caller) -> (rows, n_sample)."""
    cdef int64_t rows = probs.shape[0], k = probs.shape[1], r
    cdef cnp.ndarray out = np.empty((rows, n_sample), dtype=np.int64)
    cdef cnp.ndarray cum = np.empty(k, dtype=probs.dtype)
    cdef int64_t* o = <int64_t*>cnp.PyArray_DATA(out)
    if probs.dtype == np.float32:
        for r in range(rows):
            _cumulative_draws(&g.s, <const float*>cnp.PyArray_DATA(probs) + r * k,
                              <float*>cnp.PyArray_DATA(cum), k, n_sample, o + r * n_sample)
    else:
        for r in range(rows):
            _cumulative_draws(&g.s, <const double*>cnp.PyArray_DATA(probs) + r * k,
                              <double*>cnp.PyArray_DATA(cum), k, n_sample, o + r * n_sample)
    return out
