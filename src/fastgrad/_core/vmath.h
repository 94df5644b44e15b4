/* Vectorisable exp, tanh, sigmoid and log for float32 and float64 buffers.
 *
 * Note [Vectorised transcendental kernels]
 * glibc's expf/tanhf are scalar calls, so a loop over them cannot use SIMD registers (tanhf alone
 * is ~18 ns/element here). These versions are branch-free C: range reduction by the nearest
 * multiple of ln 2 found with the 1.5*2^p "magic number" (no float->int conversion, so NaN and
 * huge inputs are defined), a polynomial fitted on the reduced range, and the power of two built
 * from exponent bits in two halves so results that round into the subnormal range are right.
 * Every branch is a select, so GCC vectorises the loops at -O3 (check with -fopt-info-vec).
 * Each loop is compiled three times: for baseline x86-64 (SSE2), for AVX2+FMA and for AVX-512;
 * fg_vm_select picks once per module from the CPU, so a wheel built without -march=native runs
 * on any x86-64 and still uses 256- or 512-bit registers where it can. Measured error vs float64/long double references:
 * tests/test_vmath.py (a few ulp, exact at +-0, +-inf, NaN).
 */
#ifndef FASTGRAD_VMATH_H
#define FASTGRAD_VMATH_H

#include <stdint.h>
#include <string.h>
#include <stddef.h>

#define FG_INLINE static inline __attribute__((always_inline))

FG_INLINE float fg_u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
FG_INLINE uint32_t fg_f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
FG_INLINE double fg_u2d(uint64_t u) { double f; memcpy(&f, &u, 8); return f; }
FG_INLINE uint64_t fg_d2u(double f) { uint64_t u; memcpy(&u, &f, 8); return u; }

/* Horner's rule, highest coefficient first; n is a constant at every call, so it unrolls. */
FG_INLINE float fg_polyf(float v, const float *c, int n) {
    float p = c[0];
    for (int i = 1; i < n; i++) p = p * v + c[i];
    return p;
}

FG_INLINE double fg_poly(double v, const double *c, int n) {
    double p = c[0];
    for (int i = 1; i < n; i++) p = p * v + c[i];
    return p;
}

/* Fitted coefficients (relative least squares on Chebyshev nodes, 50-digit arithmetic):
 * exp: e^r = 1 + r + r^2 P(r) on |r| <= ln2/2; tanh: tanh x = x + x^3 P(x^2) on |x| <= 0.625. */
static const float FG_EXPF_P[] = {
    1.3893831532095617e-3f, 8.3631257649617762e-3f, 4.1666942692438791e-2f,
    1.6666577451405735e-1f, 4.9999999419521251e-1f};
static const double FG_EXP_P[] = {
    2.0885928222329380739e-9, 2.5105166777565165614e-8, 2.7557359957636123041e-7,
    2.7557255532726742171e-6, 2.4801587234888855272e-5, 1.9841269874704155876e-4,
    1.3888888888922606938e-3, 8.333333333326173009e-3, 4.1666666666666611477e-2,
    1.6666666666666670957e-1, 5.0000000000000000014e-1};
static const float FG_TANHF_P[] = {
    -6.0887185093023973e-3f, 2.0990875120047045e-2f, -5.3849350662120802e-2f,
    1.3332757318771290e-1f, -3.3333328787408847e-1f};
static const double FG_TANH_P[] = {
    -1.7222258316517356615e-5, 7.955522313130077598e-5, -2.3073921066570637199e-4,
    5.8742022571232779852e-4, -1.4553045347742317635e-3, 3.5920581539310993965e-3,
    -8.8632297441542140616e-3, 2.1869488255301699469e-2, -5.3968253961233561567e-2,
    1.33333333333264637e-1, -3.333333333333332218e-1};

/* log: log(1+f) = 2 atanh(s), s = f / (2 + f); R = (2 atanh(s) - 2 s) / s = z P(z), z = s^2,
 * on |s| <= (sqrt 2 - 1) / (sqrt 2 + 1). */
static const float FG_LOGF_P[] = {
    0.233300934329055532f, 0.28550837292657896871f, 0.40000121658434498908f,
    0.66666666554792042093f};
static const double FG_LOG_P[] = {
    0.13086435199788899778, 0.13268792798244088889, 0.15386238907731196726,
    0.18181795656074981572, 0.22222222391549865834, 0.28571428570804415457,
    0.40000000000000875507, 0.66666666666666666465};

/* --- exp ----------------------------------------------------------------------------------- */

/* e^x for x already clamped to the finite range and not NaN. `wide`: k may fall outside the
 * normal exponents (results near overflow or subnormal), so 2^k is applied in two halves; the
 * callers pass a constant, so the unused branch folds away. */
FG_INLINE float fg_expf_core(float xc, int wide) {
    const float magic = 12582912.0f;                      /* 1.5 * 2^23 */
    float t = xc * 1.44269504088896341f + magic;
    float k = t - magic;                                  /* nearest integer to x / ln 2 */
    uint32_t ki = fg_f2u(t) - fg_f2u(magic) + 1024u;      /* k + 1024 as an unsigned count */
    float r = xc - k * 0.693359375f;                      /* exact: ln2_hi has 9 bits */
    r = r - k * -2.12194440e-4f;
    float p = 1.0f + (r + (r * r) * fg_polyf(r, FG_EXPF_P, 5));
    if (!wide)
        return p * fg_u2f((ki - 1024u + 127u) << 23);
    uint32_t k1 = ki >> 1;                                /* 2^k = 2^(k1-512) * 2^(k-k1-512) */
    uint32_t k2 = ki - k1;
    return p * fg_u2f((k1 - 512u + 127u) << 23) * fg_u2f((k2 - 512u + 127u) << 23);
}

FG_INLINE double fg_exp_core(double xc, int wide) {
    const double magic = 6755399441055744.0;              /* 1.5 * 2^52 */
    double t = xc * 1.4426950408889634074 + magic;
    double k = t - magic;
    uint64_t ki = fg_d2u(t) - fg_d2u(magic) + 4096u;
    double r = xc - k * 6.93147180369123816490e-01;       /* ln2_hi: k*ln2_hi is exact */
    r = r - k * 1.90821492927058770002e-10;
    double p = 1.0 + (r + (r * r) * fg_poly(r, FG_EXP_P, 11));
    if (!wide)
        return p * fg_u2d((ki - 4096u + 1023u) << 52);
    uint64_t k1 = ki >> 1;
    uint64_t k2 = ki - k1;
    return p * fg_u2d((k1 - 2048u + 1023u) << 52) * fg_u2d((k2 - 2048u + 1023u) << 52);
}

/* `a < b ? a : b` is exactly x86's min instruction (and `a > b ? a : b` max), one instruction
 * where a NaN-preserving clamp takes three; NaN is put back by one select at the end. */
FG_INLINE float fg_expf(float x) {
    float xc = x < 88.9f ? x : 88.9f;
    xc = xc > -104.0f ? xc : -104.0f;
    float y = fg_expf_core(xc, 1);
    return x == x ? y : x;
}

FG_INLINE double fg_exp(double x) {
    double xc = x < 709.9 ? x : 709.9;
    xc = xc > -746.0 ? xc : -746.0;
    double y = fg_exp_core(xc, 1);
    return x == x ? y : x;
}

/* --- tanh: x + x^3 P(x^2) below 0.625, else sign(x) (1 - 2 / (exp(2|x|) + 1)) ----------------- */

/* Both precisions share everything but the polynomial, the exp and the saturation point (where
 * tanh rounds to 1; 2^(2 * SATURATE / ln 2) stays a normal number, so exp needs no wide scale). */
#define FG_TANH_BODY(T, EXP_CORE, FABS, COPYSIGN, SATURATE)                                     \
    T small = x + x * s * p;                                                                    \
    small = x == 0 ? x : small;                           /* keeps -0.0 when FMA contracts */   \
    T ax = FABS(x);                                                                             \
    T axc = ax < (T)SATURATE ? ax : (T)SATURATE;          /* NaN -> SATURATE; see below */      \
    T e = EXP_CORE((T)2 * axc, 0);                                                              \
    T big = COPYSIGN((T)1 - (T)2 / (e + (T)1), x);                                              \
    return ax >= (T)0.625 ? big : small;                  /* NaN: false, and small is NaN */

FG_INLINE float fg_tanhf(float x) {
    float s = x * x;
    float p = fg_polyf(s, FG_TANHF_P, 5);
    FG_TANH_BODY(float, fg_expf_core, __builtin_fabsf, __builtin_copysignf, 10.0f)
}

FG_INLINE double fg_tanh(double x) {
    double s = x * x;
    double p = fg_poly(s, FG_TANH_P, 11);
    FG_TANH_BODY(double, fg_exp_core, __builtin_fabs, __builtin_copysign, 20.0)
}

/* --- sigmoid: e = exp(-|x|) never overflows; 1/(1+e) for x >= 0, e/(1+e) below ----------------- */

FG_INLINE float fg_sigmoidf(float x) {
    float e = fg_expf(-__builtin_fabsf(x));
    float num = x < 0 ? e : 1.0f;
    return num / (1.0f + e);
}

FG_INLINE double fg_sigmoid(double x) {
    double e = fg_exp(-__builtin_fabs(x));
    double num = x < 0 ? e : 1.0;
    return num / (1.0 + e);
}

/* --- log: x = 2^e m with m in [sqrt(1/2), sqrt 2), log x = e ln2 + log(1 + f), f = m - 1 ------
 * Subnormal x is scaled by 2^(mantissa bits) first. The exponent becomes a float through the
 * magic-number trick (AVX2 has no int64 -> double conversion). Specials by selects at the end. */
#define FG_LOG_BODY(T, U, MBITS, BIAS, SCALE, TINY, SQRT2, POLY, COEF, NCOEF, LN2HI, LN2LO)    \
    T xs = x < (T)TINY ? x * (T)SCALE : x;                                                      \
    T eadj = x < (T)TINY ? -(T)MBITS : (T)0;                                                    \
    U u = FG_BITS(xs);                                                                          \
    U one = FG_BITS((T)1);                                                                      \
    T m = FG_FROM((u & ((((U)1) << MBITS) - 1)) | one);   /* [1, 2) */                          \
    T magic = FG_FROM(one + (((U)MBITS) << MBITS));      /* 2^MBITS */                     \
    T e = FG_FROM((u >> MBITS) | FG_BITS(magic)) - magic - (T)BIAS + eadj;                      \
    e = m > (T)SQRT2 ? e + (T)1 : e;                                                            \
    m = m > (T)SQRT2 ? m * (T)0.5 : m;                                                          \
    T f = m - (T)1;                                                                             \
    T hfsq = (T)0.5 * f * f;                                                                    \
    T sv = f / ((T)2 + f);                                                                      \
    T z = sv * sv;                                                                              \
    T R = z * POLY(z, COEF, NCOEF);                                                             \
    T r = e * (T)LN2HI - ((hfsq - (sv * (hfsq + R) + e * (T)LN2LO)) - f);                       \
    T special = x == 0 ? -(T)__builtin_inf() : (x > 0 ? x : (T)__builtin_nan(""));             \
    return (x > 0 && x < (T)__builtin_inf()) ? r : special;

#define FG_BITS(v) _Generic((v), float: fg_f2u, double: fg_d2u)(v)
#define FG_FROM(b) _Generic((b), uint32_t: fg_u2f, uint64_t: fg_u2d)(b)

FG_INLINE float fg_logf(float x) {
    FG_LOG_BODY(float, uint32_t, 23, 127, 8388608.0f, 1.17549435e-38f, 1.41421356f,
                fg_polyf, FG_LOGF_P, 4, 0.693359375f, -2.12194440e-4f)
}

FG_INLINE double fg_log(double x) {
    FG_LOG_BODY(double, uint64_t, 52, 1023, 4503599627370496.0, 2.2250738585072014e-308,
                1.4142135623730951, fg_poly, FG_LOG_P, 8, 6.93147180369123816490e-01,
                1.90821492927058770002e-10)
}

/* --- loops, one set per instruction set, and the dispatch table ---------------------------- */

enum { FG_VM_EXP = 0, FG_VM_TANH = 1, FG_VM_SIGMOID = 2, FG_VM_LOG = 3, FG_VM_NOPS = 4 };

typedef void (*fg_vm_f32_fn)(const float *, float *, ptrdiff_t);
typedef void (*fg_vm_f64_fn)(const double *, double *, ptrdiff_t);

#define FG_VM_LOOPS(ISA, ATTR)                                                                  \
    ATTR static void fg_exp_f32_##ISA(const float *a, float *o, ptrdiff_t n) {                 \
        for (ptrdiff_t i = 0; i < n; i++) o[i] = fg_expf(a[i]); }                              \
    ATTR static void fg_tanh_f32_##ISA(const float *a, float *o, ptrdiff_t n) {                \
        for (ptrdiff_t i = 0; i < n; i++) o[i] = fg_tanhf(a[i]); }                             \
    ATTR static void fg_sigmoid_f32_##ISA(const float *a, float *o, ptrdiff_t n) {             \
        for (ptrdiff_t i = 0; i < n; i++) o[i] = fg_sigmoidf(a[i]); }                          \
    ATTR static void fg_exp_f64_##ISA(const double *a, double *o, ptrdiff_t n) {               \
        for (ptrdiff_t i = 0; i < n; i++) o[i] = fg_exp(a[i]); }                               \
    ATTR static void fg_tanh_f64_##ISA(const double *a, double *o, ptrdiff_t n) {              \
        for (ptrdiff_t i = 0; i < n; i++) o[i] = fg_tanh(a[i]); }                              \
    ATTR static void fg_sigmoid_f64_##ISA(const double *a, double *o, ptrdiff_t n) {           \
        for (ptrdiff_t i = 0; i < n; i++) o[i] = fg_sigmoid(a[i]); }                           \
    ATTR static void fg_log_f32_##ISA(const float *a, float *o, ptrdiff_t n) {                 \
        for (ptrdiff_t i = 0; i < n; i++) o[i] = fg_logf(a[i]); }                              \
    ATTR static void fg_log_f64_##ISA(const double *a, double *o, ptrdiff_t n) {               \
        for (ptrdiff_t i = 0; i < n; i++) o[i] = fg_log(a[i]); }                               \
    static const fg_vm_f32_fn fg_vm_f32_##ISA[FG_VM_NOPS] = {                                  \
        fg_exp_f32_##ISA, fg_tanh_f32_##ISA, fg_sigmoid_f32_##ISA, fg_log_f32_##ISA};                            \
    static const fg_vm_f64_fn fg_vm_f64_##ISA[FG_VM_NOPS] = {                                  \
        fg_exp_f64_##ISA, fg_tanh_f64_##ISA, fg_sigmoid_f64_##ISA, fg_log_f64_##ISA};

FG_VM_LOOPS(base, )
#if defined(__x86_64__) && defined(__GNUC__)
#include "cpu_level.h"
FG_VM_LOOPS(avx2, __attribute__((target("avx2,fma"))))
/* the same loops on 512-bit registers: each element's arithmetic is the AVX2 loops', so the two
   give the same bits (only the number of elements per instruction differs) */
FG_VM_LOOPS(avx512, __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma,"
                                          "prefer-vector-width=512"))))
#define FG_HAVE_AVX2 1
#else
#define FG_HAVE_AVX2 0
#endif

static fg_vm_f32_fn fg_vm_f32[FG_VM_NOPS] = {fg_exp_f32_base, fg_tanh_f32_base,
                                             fg_sigmoid_f32_base, fg_log_f32_base};
static fg_vm_f64_fn fg_vm_f64[FG_VM_NOPS] = {fg_exp_f64_base, fg_tanh_f64_base,
                                             fg_sigmoid_f64_base, fg_log_f64_base};

/* 2: AVX-512 loops, 1: AVX2+FMA loops, 0: baseline loops, at most `want` and what the CPU has;
   returns the set in use */
static int fg_vm_select(int want) {
    int isa = 0;
#if FG_HAVE_AVX2
    isa = fg_isa_level(want);
    memcpy(fg_vm_f32, isa == 2 ? fg_vm_f32_avx512 : isa == 1 ? fg_vm_f32_avx2 : fg_vm_f32_base,
           sizeof fg_vm_f32);
    memcpy(fg_vm_f64, isa == 2 ? fg_vm_f64_avx512 : isa == 1 ? fg_vm_f64_avx2 : fg_vm_f64_base,
           sizeof fg_vm_f64);
#endif
    return isa;
}

/* --- chunk sums for deterministic reductions (Note [Deterministic sums] in kernels.pyx) --------
 * 16 independent float64 accumulators: the loop vectorises without reassociating anything, and
 * float32 data gets a float64 sum (error ~1e-16 relative per chunk, far below float32's ulp). */

#define FG_SUM_LANES 16

FG_INLINE double fg_combine_lanes(double *acc) {
    for (int w = FG_SUM_LANES / 2; w > 0; w /= 2)            /* fixed pairwise tree */
        for (int j = 0; j < w; j++) acc[j] += acc[j + w];
    return acc[0];
}

static inline double fg_sum_chunk_f32(const float *a, ptrdiff_t n) {
    double acc[FG_SUM_LANES] = {0};
    ptrdiff_t i = 0, m = n - n % FG_SUM_LANES;
    for (; i < m; i += FG_SUM_LANES)
        for (int j = 0; j < FG_SUM_LANES; j++) acc[j] += (double)a[i + j];
    for (; i < n; i++) acc[i - m] += (double)a[i];
    return fg_combine_lanes(acc);
}

static inline double fg_sum_chunk_f64(const double *a, ptrdiff_t n) {
    double acc[FG_SUM_LANES] = {0};
    ptrdiff_t i = 0, m = n - n % FG_SUM_LANES;
    for (; i < m; i += FG_SUM_LANES)
        for (int j = 0; j < FG_SUM_LANES; j++) acc[j] += a[i + j];
    for (; i < n; i++) acc[i - m] += a[i];
    return fg_combine_lanes(acc);
}


#endif
