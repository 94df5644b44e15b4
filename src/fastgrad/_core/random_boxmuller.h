/* Box-Muller blocks of 16 for normal_ on float32 and float64 (random.pyx, Note [PyTorch's streams]).
 *
 * PyTorch fills a contiguous tensor of >= 16 elements with uniforms first and then turns each
 * block of 16 into normals: u1 = 1 - data[j], u2 = data[j + 8], r = sqrt(-2 log u1),
 * theta = 2 pi u2, data[j] = r cos(theta) * std + mean, data[j + 8] = r sin(theta) * std + mean.
 * To give the same bits the arithmetic has to be the same operation for operation:
 *
 * - float32 runs PyTorch's AVX2 kernel on any CPU with AVX2 (its AVX-512 build registers no
 *   normal kernel, so AVX-512 machines run the AVX2 one too). That kernel computes log, sin and cos
 *   with the Cephes single-precision polynomials (the ones of "sse_mathfun"), each step one float
 *   operation; the build fuses every multiply whose only use is an add into one fused
 *   multiply-add, so fg_bm16_f32 below spells those out as fmaf and everything else as separate
 *   float operations. This module is compiled with -ffp-contract=off so the compiler adds no
 *   fusion of its own. theta is float(2 pi) * u2 in float.
 * - float64 uses the C library's log, cos and sin (the same glibc PyTorch calls), theta rounded
 *   from (double)(2 pi) * u2, and fma(r * cos, std, mean).
 *
 * Every loop is compiled for baseline x86-64 and for AVX2+FMA (picked at run time); fmaf/fma are
 * exact in both (a library call without FMA hardware), so the two give identical bits. The
 * uniform_ affine map lives here for the same reason.
 */
#ifndef FASTGRAD_RANDOM_BOXMULLER_H
#define FASTGRAD_RANDOM_BOXMULLER_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define FG_BM_INLINE static inline __attribute__((always_inline))

FG_BM_INLINE float fg_bm_u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
FG_BM_INLINE uint32_t fg_bm_f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* Cephes logf on (0, 1]: x = m * 2^e with m in [sqrt(1/2), sqrt 2), log = log1p-polynomial. */
#ifndef FG_BM_UNFUSED
#define FG_MADD(a, b, c) fmaf(a, b, c)
#else
#define FG_MADD(a, b, c) ((a) * (b) + (c))
#endif

FG_BM_INLINE float fg_bm_logf(float x) {
    const float one = 1.0f;
    x = x > 1.17549435e-38f ? x : 1.17549435e-38f;        /* smallest normal */
    uint32_t bits = fg_bm_f2u(x);
    int32_t ex = (int32_t)(bits >> 23) - 0x7f;
    x = fg_bm_u2f((bits & ~0x7f800000u) | fg_bm_f2u(0.5f));
    float e = (float)ex;
    e = e + one;
    int small = x < 0.707106781186547524f;
    float tmp = small ? x : 0.0f;
    x = x - one;
    e = e - (small ? one : 0.0f);
    x = x + tmp;
    float z = x * x;
    float y = 7.0376836292E-2f;
    y = FG_MADD(y, x, -1.1514610310E-1f);
    y = FG_MADD(y, x, 1.1676998740E-1f);
    y = FG_MADD(y, x, -1.2420140846E-1f);
    y = FG_MADD(y, x, 1.4249322787E-1f);
    y = FG_MADD(y, x, -1.6668057665E-1f);
    y = FG_MADD(y, x, 2.0000714765E-1f);
    y = FG_MADD(y, x, -2.4999993993E-1f);
    y = FG_MADD(y, x, 3.3333331174E-1f);
    y = y * x;
    tmp = e * -2.12194440e-4f;
    y = FG_MADD(y, z, tmp);
    y = FG_MADD(-z, 0.5f, y);
    x = x + y;
    x = FG_MADD(e, 0.693359375f, x);
    return x;
}

/* Cephes sincosf with the octant reduction of sse_mathfun (valid for the |x| < 2 pi used here). */
FG_BM_INLINE void fg_bm_sincosf(float x, float *s, float *c) {
    uint32_t sign_sin = fg_bm_f2u(x) & 0x80000000u;
    x = fg_bm_u2f(fg_bm_f2u(x) & 0x7fffffffu);
    float y = x * 1.27323954473516f;
    int32_t j = (int32_t)y;
    j = (j + 1) & ~1;
    y = (float)j;
    uint32_t swap_sin = ((uint32_t)(j & 4)) << 29;
    int poly_sin = (j & 2) == 0;
    x = FG_MADD(y, -0.78515625f, x);
    x = FG_MADD(y, -2.4187564849853515625e-4f, x);
    x = FG_MADD(y, -3.77489497744594108e-8f, x);
    int32_t j4 = j - 2;
    uint32_t sign_cos = ((uint32_t)(~j4 & 4)) << 29;
    sign_sin ^= swap_sin;
    float z = x * x;
    float p = 2.443315711809948E-005f;
    p = FG_MADD(p, z, -1.388731625493765E-003f);
    p = FG_MADD(p, z, 4.166664568298827E-002f);
    p = p * z;
    float tmp = z * 0.5f;
    p = FG_MADD(p, z, -tmp);
    p = p + 1.0f;
    float q = -1.9515295891E-4f;
    q = FG_MADD(q, z, 8.3321608736E-3f);
    q = FG_MADD(q, z, -1.6666654611E-1f);
    q = q * z;
    q = FG_MADD(q, x, x);
    /* poly_sin: the sine polynomial q is the sine; otherwise p is (and q the cosine) */
    float sv = poly_sin ? q : p;
    float cv = poly_sin ? p : q;
    *s = fg_bm_u2f(fg_bm_f2u(sv + 0.0f) ^ sign_sin);
    *c = fg_bm_u2f(fg_bm_f2u(cv + 0.0f) ^ sign_cos);
}

/* r cos(theta) and r sin(theta) for one pair of uniforms: float32 with the Cephes functions above,
 * float64 with the C library's. */
FG_BM_INLINE void fg_bm_polar_f32(float u1, float u2, float *rc, float *rs) {
    float radius = sqrtf(-2.0f * fg_bm_logf(u1));
    float theta = (float)(2.0f * 3.14159265358979323846) * u2;
    float s, c;
    fg_bm_sincosf(theta, &s, &c);
    *rc = radius * c;
    *rs = radius * s;
}

FG_BM_INLINE void fg_bm_polar_f64(double u1, double u2, double *rc, double *rs) {
    double radius = sqrt(-2 * log(u1));
    double theta = (2.0f * 3.14159265358979323846) * u2;
    *rc = radius * cos(theta);
    *rs = radius * sin(theta);
}

#define FG_BM_LOOP(NAME, ATTR, T, POLAR, FMA)                                                   \
ATTR static void NAME(T *data, int64_t nblocks, T mean, T std) {                                \
    for (int64_t b = 0; b < nblocks; b++) {                                                     \
        T *d = data + 16 * b;                                                                   \
        for (int j = 0; j < 8; j++) {                                                           \
            T rc, rs;                                                                           \
            POLAR(1 - d[j], d[j + 8], &rc, &rs);                                                \
            d[j] = FMA(rc, std, mean);                                                          \
            d[j + 8] = FMA(rs, std, mean);                                                      \
        }                                                                                       \
    }                                                                                           \
}

/* uniform_(from, to): x -> fma(x, to - from, from), and `to` (reachable by rounding) -> from */
#define FG_AFFINE_LOOPS(SUFFIX, ATTR)                                                           \
ATTR static void fg_affine_f32_##SUFFIX(float *p, int64_t n, float span, float lo, float hi) { \
    for (int64_t i = 0; i < n; i++) {                                                           \
        float x = fmaf(p[i], span, lo);                                                         \
        p[i] = x == hi ? lo : x;                                                                \
    }                                                                                           \
}                                                                                               \
ATTR static void fg_affine_f64_##SUFFIX(double *p, int64_t n, double span, double lo,          \
                                        double hi) {                                            \
    for (int64_t i = 0; i < n; i++) {                                                           \
        double x = fma(p[i], span, lo);                                                         \
        p[i] = x == hi ? lo : x;                                                                \
    }                                                                                           \
}

#define FG_AVX2 __attribute__((target("avx2,fma")))
FG_BM_LOOP(fg_bm16_f32_base, , float, fg_bm_polar_f32, fmaf)
FG_BM_LOOP(fg_bm16_f32_avx2, FG_AVX2, float, fg_bm_polar_f32, fmaf)
FG_BM_LOOP(fg_bm16_f64_base, , double, fg_bm_polar_f64, fma)
FG_BM_LOOP(fg_bm16_f64_avx2, FG_AVX2, double, fg_bm_polar_f64, fma)
FG_AFFINE_LOOPS(base, )
FG_AFFINE_LOOPS(avx2, FG_AVX2)

static int fg_bm_have_avx2 = -1;

/* fmaf/fma are exact everywhere (a library call without FMA hardware); the AVX2+FMA copies only
 * run faster, so both give the same bits. */
static int fg_rand_avx2(void) {
    if (fg_bm_have_avx2 < 0) {
        __builtin_cpu_init();
        fg_bm_have_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return fg_bm_have_avx2;
}

/* Box-Muller on nblocks consecutive blocks of 16 uniforms, in place. */
static void fg_bm16_f32(float *data, int64_t nblocks, float mean, float std) {
    if (fg_rand_avx2()) fg_bm16_f32_avx2(data, nblocks, mean, std);
    else fg_bm16_f32_base(data, nblocks, mean, std);
}

static void fg_bm16_f64(double *data, int64_t nblocks, double mean, double std) {
    if (fg_rand_avx2()) fg_bm16_f64_avx2(data, nblocks, mean, std);
    else fg_bm16_f64_base(data, nblocks, mean, std);
}

static void fg_affine_f32(float *p, int64_t n, float span, float lo, float hi) {
    if (fg_rand_avx2()) fg_affine_f32_avx2(p, n, span, lo, hi);
    else fg_affine_f32_base(p, n, span, lo, hi);
}

static void fg_affine_f64(double *p, int64_t n, double span, double lo, double hi) {
    if (fg_rand_avx2()) fg_affine_f64_avx2(p, n, span, lo, hi);
    else fg_affine_f64_base(p, n, span, lo, hi);
}

#endif
