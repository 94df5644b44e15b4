/* The layer norm's row loops (ops_norm.pyx), compiled for baseline x86-64, for AVX2+FMA and for
 * AVX-512, and picked once per process from the CPU (as vmath.h and rnn_cell.h pick theirs).
 *
 * Note [Norm rows per instruction set]
 * The core is built for any x86-64, so GCC vectorised these loops with 4-float SSE registers:
 * a (1024, 128) float32 layer norm took ~78 us forward on one core, as long as PyTorch's. The
 * same loops built for 512-bit registers take ~33 us (its output's allocation included), and
 * softmax_rows.h does the same for the softmax rows. ops_norm is built with
 * reassociation allowed (setup.py), so every sum here is vectorised, in an order that depends
 * on the register width: a given machine gives the same bits on any thread count, and float
 * results may differ in the last bits between machines.
 */
#ifndef FASTGRAD_NORM_ROWS_H
#define FASTGRAD_NORM_ROWS_H

#include <math.h>
#include <stddef.h>
#include "vmath.h"              /* FG_HAVE_AVX2 */

/* y = (x - mean) rstd * w + b per row of D; each row's mean and rstd = 1 / sqrt(var + eps)
 * (biased variance) kept */
#define FG_LN_FWD_ROWS(T, NAME, ATTR)                                                           \
    ATTR static void NAME(const T *restrict x, const T *restrict w, const T *restrict b,       \
                          T *restrict y, T *restrict mean, T *restrict rstd, ptrdiff_t M,      \
                          ptrdiff_t D, double eps) {                                           \
        for (ptrdiff_t i = 0; i < M; i++) {                                                     \
            const T *restrict row = x + i * D;                                                  \
            T *restrict out = y + i * D;                                                        \
            T s = 0, v = 0;                                                                     \
            for (ptrdiff_t j = 0; j < D; j++) s = s + row[j];                                   \
            T mu = s / D;                                                                       \
            for (ptrdiff_t j = 0; j < D; j++) { T d = row[j] - mu; v = v + d * d; }             \
            T r = (T)(1.0 / sqrt(v / D + eps));                                                 \
            mean[i] = mu;                                                                       \
            rstd[i] = r;                                                                        \
            for (ptrdiff_t j = 0; j < D; j++) out[j] = (row[j] - mu) * r * w[j] + b[j];          \
        }                                                                                       \
    }

/* dx per row, with xhat = (x - mean) rstd and gw = g w: rstd (gw - mean(gw) - xhat mean(gw
 * xhat)); dw += g xhat and db += g over the rows (zeroed by the caller) */
#define FG_LN_BWD_ROWS(T, NAME, ATTR)                                                           \
    ATTR static void NAME(const T *restrict g, const T *restrict x, const T *restrict w,       \
                          const T *restrict mean, const T *restrict rstd, T *restrict dx,      \
                          T *restrict dw, T *restrict db, ptrdiff_t M, ptrdiff_t D) {          \
        for (ptrdiff_t i = 0; i < M; i++) {                                                     \
            T mu = mean[i], r = rstd[i], a = 0, c = 0;                                          \
            const T *restrict gr = g + i * D, *restrict xr = x + i * D;                         \
            T *restrict dr = dx + i * D;                                                        \
            for (ptrdiff_t j = 0; j < D; j++) {                                                 \
                T xh = (xr[j] - mu) * r, gi = gr[j], gw = gi * w[j];                            \
                c = c + gw;                                                                     \
                a = a + gw * xh;                                                                \
                dw[j] = dw[j] + gi * xh;                                                        \
                db[j] = db[j] + gi;                                                             \
            }                                                                                   \
            a = a / D;                                                                          \
            c = c / D;                                                                          \
            for (ptrdiff_t j = 0; j < D; j++) {                                                 \
                T xh = (xr[j] - mu) * r;                                                        \
                dr[j] = r * (gr[j] * w[j] - c - xh * a);                                        \
            }                                                                                   \
        }                                                                                       \
    }

typedef void (*fg_ln_fwd_f32_fn)(const float *, const float *, const float *, float *, float *,
                                 float *, ptrdiff_t, ptrdiff_t, double);
typedef void (*fg_ln_fwd_f64_fn)(const double *, const double *, const double *, double *,
                                 double *, double *, ptrdiff_t, ptrdiff_t, double);
typedef void (*fg_ln_bwd_f32_fn)(const float *, const float *, const float *, const float *,
                                 const float *, float *, float *, float *, ptrdiff_t, ptrdiff_t);
typedef void (*fg_ln_bwd_f64_fn)(const double *, const double *, const double *,
                                 const double *, const double *, double *, double *, double *,
                                 ptrdiff_t, ptrdiff_t);

#define FG_NORM_ROWS(ISA, ATTR)                                                                 \
    FG_LN_FWD_ROWS(float, fg_ln_fwd_f32_##ISA, ATTR)                                            \
    FG_LN_FWD_ROWS(double, fg_ln_fwd_f64_##ISA, ATTR)                                           \
    FG_LN_BWD_ROWS(float, fg_ln_bwd_f32_##ISA, ATTR)                                            \
    FG_LN_BWD_ROWS(double, fg_ln_bwd_f64_##ISA, ATTR)

FG_NORM_ROWS(base, )
#if FG_HAVE_AVX2
#include "cpu_level.h"
FG_NORM_ROWS(avx2, __attribute__((target("avx2,fma"))))
FG_NORM_ROWS(avx512, __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma,"
                                           "prefer-vector-width=512"))))
#endif

static fg_ln_fwd_f32_fn fg_ln_fwd_f32 = fg_ln_fwd_f32_base;
static fg_ln_fwd_f64_fn fg_ln_fwd_f64 = fg_ln_fwd_f64_base;
static fg_ln_bwd_f32_fn fg_ln_bwd_f32 = fg_ln_bwd_f32_base;
static fg_ln_bwd_f64_fn fg_ln_bwd_f64 = fg_ln_bwd_f64_base;

/* 2: AVX-512 loops, 1: AVX2+FMA, 0: baseline; at most `want`; returns the set in use */
static int fg_norm_rows_select(int want) {
    int isa = 0;
#if FG_HAVE_AVX2
    isa = fg_isa_level(want);
#define FG_NORM_PICK(ISA)                                                                       \
    fg_ln_fwd_f32 = fg_ln_fwd_f32_##ISA; fg_ln_fwd_f64 = fg_ln_fwd_f64_##ISA;                   \
    fg_ln_bwd_f32 = fg_ln_bwd_f32_##ISA; fg_ln_bwd_f64 = fg_ln_bwd_f64_##ISA;
    if (isa == 2) { FG_NORM_PICK(avx512) }
    else if (isa == 1) { FG_NORM_PICK(avx2) }
    else { FG_NORM_PICK(base) }
#undef FG_NORM_PICK
#endif
    return isa;
}

#endif
