/* The LSTM's per-row gate kernels for the recurrent time loops (rnn_kernels.pyx), each in one
 * pass over the row, compiled for baseline x86-64 and for AVX2+FMA and AVX-512 (picked once per
 * process from the CPU, as vmath.h picks its loops).
 *
 * Note [Fused LSTM cell]
 * A forward step of a unit block used to be five vectorised calls (sigmoid of i and f, tanh of
 * g, sigmoid of o, tanh of c) on 64-element slices plus three loops and four copies (c entering
 * the step, tanh c, h into the state and into the next step's h_prev) per batch row: W12 spent
 * ~15% of its time there, mostly in calls too short to fill the vector pipeline. Here one loop
 * does all of it per element (vmath.h's scalar sigmoid and tanh, which GCC vectorises), writing
 * each result where it is needed. The gradient row is likewise one loop.
 * A given machine runs the same instructions on 1 and 2 threads, so results stay bit-identical
 * across thread counts; between machines (AVX-512 or not, FMA contraction or not) float32
 * results may differ in the last bits, as vmath.h's do.
 */
#ifndef FASTGRAD_RNN_CELL_H
#define FASTGRAD_RNN_CELL_H

#include "vmath.h"

#define FG_LSTM_FWD_LOOP(T, SIG, TANH, G)                                                       \
        for (ptrdiff_t j = 0; j < n; j++) {                                                     \
            T gi = SIG(G(j)), gf = SIG(G(n + j)), gg = TANH(G(2 * n + j));                     \
            T go = SIG(G(3 * n + j)), c0 = c[j];                                                \
            T c1 = gf * c0 + gi * gg;                                                           \
            T t = TANH(c1);                                                                     \
            T hv = go * t;                                                                      \
            g[j] = gi; g[n + j] = gf; g[2 * n + j] = gg; g[3 * n + j] = go;                     \
            cp[j] = c0; c[j] = c1; tc[j] = t; h[j] = hv;                                        \
        }
#define FG_LSTM_G(k) g[k]
#define FG_LSTM_GB(k) (g[k] + bias[k])

/* g: the block's gates of one row (i, f, g, o, n each) before the bias (when not NULL: the
 * block's 4n biases in the same order) and the activations, activated in place; c: the state row
 * (updated); cp, tc: c entering the step and tanh of c leaving it; h: the output row; hs, hn
 * (each may be NULL): the state's h row, the next step's h_prev row. */
#define FG_LSTM_FWD_ROW(T, NAME, SIG, TANH, ATTR)                                               \
    ATTR static void NAME(T *restrict g, const T *restrict bias, T *restrict c,                \
                          T *restrict cp, T *restrict tc, T *restrict h, T *restrict hs,       \
                          T *restrict hn, ptrdiff_t n) {                                       \
        if (bias) {                                                                             \
            FG_LSTM_FWD_LOOP(T, SIG, TANH, FG_LSTM_GB)                                          \
        } else {                                                                                \
            FG_LSTM_FWD_LOOP(T, SIG, TANH, FG_LSTM_G)                                           \
        }                                                                                       \
        if (hs) memcpy(hs, h, n * sizeof(T));                                                   \
        if (hn) memcpy(hn, h, n * sizeof(T));                                                   \
    }

/* g: activated gates (i, f, g, o, n each), tc = tanh c, cp = c entering the step, dh: the
 * gradient of the step's h, plus go[j] when go is not NULL (the output's gradient); dc enters as
 * the gradient of c leaving the step and leaves as that of c entering it; d gets the
 * pre-activation gate gradients, and db (float64, when not NULL) += d: the bias gradient, summed
 * in row order. */
#define FG_LSTM_BWD_LOOP(T, DH)                                                             \
        for (ptrdiff_t j = 0; j < n; j++) {                                                     \
            T gi = g[j], gf = g[n + j], gg = g[2 * n + j], gO = g[3 * n + j], t = tc[j];       \
            T dhj = DH;                                                                         \
            T dcc = dc[j] + dhj * gO * (1 - t * t);                                             \
            T di = dcc * gg * gi * (1 - gi), df = dcc * cp[j] * gf * (1 - gf);                  \
            T dg = dcc * gi * (1 - gg * gg), dO = dhj * t * gO * (1 - gO);                      \
            d[j] = di; d[n + j] = df; d[2 * n + j] = dg; d[3 * n + j] = dO;                     \
            dc[j] = dcc * gf;                                                                   \
        }

/* one loop with the output gradient and one without, and the bias sum as a loop of its own
 * (with the tests, or the float64 sums, inside the main loop GCC leaves it scalar) */
#define FG_LSTM_BWD_ROW(T, NAME, ATTR)                                                          \
    ATTR static void NAME(const T *restrict g, const T *restrict tc, const T *restrict cp,     \
                          const T *restrict dh, const T *restrict go, T *restrict dc,          \
                          T *restrict d, double *restrict db, ptrdiff_t n) {                   \
        if (go) {                                                                               \
            FG_LSTM_BWD_LOOP(T, dh[j] + go[j])                                                  \
        } else {                                                                                \
            FG_LSTM_BWD_LOOP(T, dh[j])                                                          \
        }                                                                                       \
        if (db)                                                                                 \
            for (ptrdiff_t j = 0; j < 4 * n; j++) db[j] += d[j];                                \
    }

typedef void (*fg_lstm_fwd_f32_fn)(float *, const float *, float *, float *, float *, float *,
                                   float *, float *, ptrdiff_t);
typedef void (*fg_lstm_fwd_f64_fn)(double *, const double *, double *, double *, double *,
                                   double *, double *, double *, ptrdiff_t);
typedef void (*fg_lstm_bwd_f32_fn)(const float *, const float *, const float *, const float *,
                                   const float *, float *, float *, double *, ptrdiff_t);
typedef void (*fg_lstm_bwd_f64_fn)(const double *, const double *, const double *,
                                   const double *, const double *, double *, double *, double *,
                                   ptrdiff_t);

#define FG_LSTM_ROWS(ISA, ATTR)                                                                 \
    FG_LSTM_FWD_ROW(float, fg_lstm_fwd_f32_##ISA, fg_sigmoidf, fg_tanhf, ATTR)                  \
    FG_LSTM_FWD_ROW(double, fg_lstm_fwd_f64_##ISA, fg_sigmoid, fg_tanh, ATTR)                   \
    FG_LSTM_BWD_ROW(float, fg_lstm_bwd_f32_##ISA, ATTR)                                         \
    FG_LSTM_BWD_ROW(double, fg_lstm_bwd_f64_##ISA, ATTR)

FG_LSTM_ROWS(base, )
#if FG_HAVE_AVX2
#include "cpu_level.h"
FG_LSTM_ROWS(avx2, __attribute__((target("avx2,fma"))))
/* 512-bit registers: a 64-unit block row is 4 iterations instead of 8 */
FG_LSTM_ROWS(avx512, __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma,"
                                           "prefer-vector-width=512"))))
#endif

static fg_lstm_fwd_f32_fn fg_lstm_fwd_f32 = fg_lstm_fwd_f32_base;
static fg_lstm_fwd_f64_fn fg_lstm_fwd_f64 = fg_lstm_fwd_f64_base;
static fg_lstm_bwd_f32_fn fg_lstm_bwd_f32 = fg_lstm_bwd_f32_base;
static fg_lstm_bwd_f64_fn fg_lstm_bwd_f64 = fg_lstm_bwd_f64_base;

/* 2: AVX-512 rows, 1: AVX2+FMA rows, 0: baseline; at most `want`; returns the set in use */
static int fg_lstm_select(int want) {
    int isa = 0;
#if FG_HAVE_AVX2
    isa = fg_isa_level(want);
#define FG_LSTM_PICK(ISA)                                                                       \
    fg_lstm_fwd_f32 = fg_lstm_fwd_f32_##ISA; fg_lstm_fwd_f64 = fg_lstm_fwd_f64_##ISA;           \
    fg_lstm_bwd_f32 = fg_lstm_bwd_f32_##ISA; fg_lstm_bwd_f64 = fg_lstm_bwd_f64_##ISA;
    if (isa == 2) { FG_LSTM_PICK(avx512) }
    else if (isa == 1) { FG_LSTM_PICK(avx2) }
    else { FG_LSTM_PICK(base) }
#undef FG_LSTM_PICK
#endif
    return isa;
}

#endif
