/* The softmax row loops of attention_kernels.pyx (the attention heads' and softmax's over the
 * last dim), compiled for baseline x86-64, for AVX2+FMA and for AVX-512, and picked once per
 * process from the CPU (Note [Norm rows per instruction set] in norm_rows.h).
 * A row's max, sum and dot product are kept in FG_LANES partial results, element j in lane
 * j % FG_LANES, combined pairwise at the end (Note [Row reductions in lanes] in
 * attention_kernels.pyx): the order of the additions depends on the row length alone, so the
 * thread count never changes a bit; the AVX2 and AVX-512 loops fuse multiply-adds, so float
 * results may differ in the last bits between machines.
 */
#ifndef FASTGRAD_SOFTMAX_ROWS_H
#define FASTGRAD_SOFTMAX_ROWS_H

#include <math.h>
#include <stddef.h>
#include "vmath.h"              /* FG_HAVE_AVX2 */

#define FG_LANES 16

/* The max of r[:S], NaN never taken (MAXPS's rule: a > b ? a : b); -inf for an empty row. The
 * order does not matter to a max, so each instruction set takes its own vector width. */
static float fg_row_max_f32_base(const float *r, ptrdiff_t S) {
    float m = -INFINITY;
    for (ptrdiff_t j = 0; j < S; j++) m = r[j] > m ? r[j] : m;
    return m;
}
static double fg_row_max_f64_base(const double *r, ptrdiff_t S) {
    double m = -INFINITY;
    for (ptrdiff_t j = 0; j < S; j++) m = r[j] > m ? r[j] : m;
    return m;
}
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* VEC: the vector type, W lanes, LOAD/MAX/SET1/STORE its intrinsics */
#define FG_ROW_MAX(T, NAME, ATTR, VEC, W, LOAD, MAX, SET1, STORE)                               \
    ATTR static T NAME(const T *r, ptrdiff_t S) {                                              \
        VEC acc = SET1((T)-INFINITY);                                                           \
        T lanes[W], m = -INFINITY;                                                              \
        ptrdiff_t j = 0;                                                                        \
        for (; j + W <= S; j += W) acc = MAX(LOAD(r + j), acc);                                 \
        STORE(lanes, acc);                                                                      \
        for (int l = 0; l < W; l++) m = lanes[l] > m ? lanes[l] : m;                            \
        for (; j < S; j++) m = r[j] > m ? r[j] : m;                                             \
        return m;                                                                               \
    }
FG_ROW_MAX(float, fg_row_max_f32_avx2, __attribute__((target("avx2,fma"))), __m256, 8,
           _mm256_loadu_ps, _mm256_max_ps, _mm256_set1_ps, _mm256_storeu_ps)
FG_ROW_MAX(double, fg_row_max_f64_avx2, __attribute__((target("avx2,fma"))), __m256d, 4,
           _mm256_loadu_pd, _mm256_max_pd, _mm256_set1_pd, _mm256_storeu_pd)
FG_ROW_MAX(float, fg_row_max_f32_avx512, __attribute__((target("avx512f"))), __m512, 16,
           _mm512_loadu_ps, _mm512_max_ps, _mm512_set1_ps, _mm512_storeu_ps)
FG_ROW_MAX(double, fg_row_max_f64_avx512, __attribute__((target("avx512f"))), __m512d, 8,
           _mm512_loadu_pd, _mm512_max_pd, _mm512_set1_pd, _mm512_storeu_pd)
#endif

#define FG_SOFTMAX_ROWS(T, SUF, ISA, ATTR)                                                      \
    /* the lanes combined pairwise: acc[l] += acc[l + w] for w = 8, 4, 2, 1 */                  \
    ATTR static inline T fg_lanes_sum_##SUF##_##ISA(T *acc) {                                   \
        for (int w = FG_LANES / 2; w >= 1; w /= 2)                                              \
            for (int l = 0; l < w; l++) acc[l] = acc[l] + acc[l + w];                           \
        return acc[0];                                                                          \
    }                                                                                           \
    /* sum of r[:S] (with q: of r * q) in lanes, then the tail in order */                      \
    ATTR static T fg_row_dot_##SUF##_##ISA(const T *restrict r, const T *restrict q,            \
                                           ptrdiff_t S) {                                       \
        T acc[FG_LANES];                                                                        \
        ptrdiff_t body = S - S % FG_LANES, j;                                                   \
        for (int l = 0; l < FG_LANES; l++) acc[l] = 0;                                          \
        if (q)                                                                                  \
            for (j = 0; j < body; j += FG_LANES)                                                \
                for (int l = 0; l < FG_LANES; l++) acc[l] = acc[l] + r[j + l] * q[j + l];       \
        else                                                                                    \
            for (j = 0; j < body; j += FG_LANES)                                                \
                for (int l = 0; l < FG_LANES; l++) acc[l] = acc[l] + r[j + l];                  \
        T z = fg_lanes_sum_##SUF##_##ISA(acc);                                                  \
        for (j = body; j < S; j++) z = z + (q ? r[j] * q[j] : r[j]);                            \
        return z;                                                                               \
    }                                                                                           \
    /* each row of s (M, S): s = s * scale - max(s * scale) (NaN is never the max); a max that  \
       is not finite is taken as 0, or with nan_rows makes the row NaN */                       \
    ATTR static void fg_rows_shift_##SUF##_##ISA(T *restrict s, ptrdiff_t M, ptrdiff_t S,       \
                                                 T scale, int nan_rows) {                       \
        for (ptrdiff_t i = 0; i < M; i++) {                                                     \
            T *restrict r = s + i * S;                                                          \
            if (scale != 1)                                                                     \
                for (ptrdiff_t j = 0; j < S; j++) r[j] = r[j] * scale;                          \
            T m = fg_row_max_##SUF##_##ISA(r, S);                                               \
            if (!isfinite(m)) {                                                                 \
                if (nan_rows) {                                                                 \
                    for (ptrdiff_t j = 0; j < S; j++) r[j] = NAN;                               \
                    continue;                                                                   \
                }                                                                               \
                m = 0;                                                                          \
            }                                                                                   \
            for (ptrdiff_t j = 0; j < S; j++) r[j] = r[j] - m;                                  \
        }                                                                                       \
    }                                                                                           \
    /* r[:n] = r[:n] * z (with q: r = r - q * z) */                                             \
    ATTR static void fg_row_scale_##SUF##_##ISA(T *restrict r, const T *restrict q, T z,        \
                                                ptrdiff_t n) {                                  \
        if (q)                                                                                  \
            for (ptrdiff_t j = 0; j < n; j++) r[j] = r[j] - q[j] * z;                           \
        else                                                                                    \
            for (ptrdiff_t j = 0; j < n; j++) r[j] = r[j] * z;                                  \
    }                                                                                           \
    /* dS = P * (dP - rowsum(dP * P)) * scale in place of dP */                                 \
    ATTR static void fg_rows_softmax_bwd_##SUF##_##ISA(T *restrict dp, const T *restrict p,     \
                                                       ptrdiff_t M, ptrdiff_t S, T scale) {     \
        for (ptrdiff_t i = 0; i < M; i++) {                                                     \
            T *restrict d = dp + i * S;                                                         \
            const T *restrict q = p + i * S;                                                    \
            T a = fg_row_dot_##SUF##_##ISA(d, q, S);                                            \
            for (ptrdiff_t j = 0; j < S; j++) d[j] = q[j] * (d[j] - a) * scale;                 \
        }                                                                                       \
    }

#define FG_SOFTMAX_SET(ISA, ATTR)                                                               \
    FG_SOFTMAX_ROWS(float, f32, ISA, ATTR)                                                      \
    FG_SOFTMAX_ROWS(double, f64, ISA, ATTR)

FG_SOFTMAX_SET(base, )
#if FG_HAVE_AVX2
#include "cpu_level.h"
FG_SOFTMAX_SET(avx2, __attribute__((target("avx2,fma"))))
FG_SOFTMAX_SET(avx512, __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma,"
                                             "prefer-vector-width=512"))))
#endif

#define FG_SOFTMAX_FNS(T, SUF)                                                                  \
    static T (*fg_row_dot_##SUF)(const T *, const T *, ptrdiff_t) = fg_row_dot_##SUF##_base;    \
    static void (*fg_rows_shift_##SUF)(T *, ptrdiff_t, ptrdiff_t, T, int) =                     \
        fg_rows_shift_##SUF##_base;                                                             \
    static void (*fg_row_scale_##SUF)(T *, const T *, T, ptrdiff_t) = fg_row_scale_##SUF##_base;\
    static void (*fg_rows_softmax_bwd_##SUF)(T *, const T *, ptrdiff_t, ptrdiff_t, T) =         \
        fg_rows_softmax_bwd_##SUF##_base;
FG_SOFTMAX_FNS(float, f32)
FG_SOFTMAX_FNS(double, f64)

/* 2: AVX-512 loops, 1: AVX2+FMA, 0: baseline; at most `want`; returns the set in use */
static int fg_softmax_rows_select(int want) {
    int isa = 0;
#if FG_HAVE_AVX2
    isa = fg_isa_level(want);
#define FG_SOFTMAX_PICK1(SUF, ISA)                                                              \
    fg_row_dot_##SUF = fg_row_dot_##SUF##_##ISA; fg_rows_shift_##SUF = fg_rows_shift_##SUF##_##ISA; \
    fg_row_scale_##SUF = fg_row_scale_##SUF##_##ISA;                                            \
    fg_rows_softmax_bwd_##SUF = fg_rows_softmax_bwd_##SUF##_##ISA;
#define FG_SOFTMAX_PICK(ISA) FG_SOFTMAX_PICK1(f32, ISA) FG_SOFTMAX_PICK1(f64, ISA)
    if (isa == 2) { FG_SOFTMAX_PICK(avx512) }
    else if (isa == 1) { FG_SOFTMAX_PICK(avx2) }
    else { FG_SOFTMAX_PICK(base) }
#undef FG_SOFTMAX_PICK
#undef FG_SOFTMAX_PICK1
#endif
    return isa;
}

#endif
