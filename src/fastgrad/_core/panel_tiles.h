/* Register-tiled float32 products on packed weights, for AVX2+FMA and AVX-512 CPUs: the
 * recurrent time loops' (rnn_kernels.pyx) and the linear layers' (blas.pyx, Note [Linear
 * products on packed panels]).
 *
 * Note [Packed recurrent weights]
 * Each time step multiplies a few rows (the batch, 32 for W12) by the same weight columns: a
 * forward block [x_t | h_{t-1}] (b, I + P) @ its columns of [W_ih^T; W_hh^T] (I + P, 4 hb), a
 * gradient block's partial dG (b, 4 hb) @ its rows of W_hh (4 hb, P). OpenBLAS ran W12's
 * forward block product (32x256x192) in ~24 us on one core (~65 GMAC/s, its small-matrix kernel
 * reading the weights in their row-major layout at every step). Here the block's weight operand
 * is copied once per pass (at the block's first step, by the thread that runs it, so the copy is
 * in that core's cache) into panels of NR columns, each panel's rows contiguous (NR floats per
 * row, the last panel zero-padded), and every step runs tiles of MR rows x NR columns over them:
 * per k, NR/VL panel loads and MR broadcasts of A's elements for MR * NR / VL fused
 * multiply-adds, the accumulators in registers for the whole K.
 *   AVX-512: MR 8, NR 32 (16 accumulators of 16 lanes)
 *   AVX2:    MR 6, NR 16 (12 accumulators of 8 lanes)
 * W12's forward block product then takes ~17 us (~95 GMAC/s, about what the core's two 512-bit
 * FMA units give), its forward ~25% less time on one core. The gradient partial (32x128x256,
 * ~11 us) and the in-loop weight gradient (Note [Weight gradients in the loop]: A transposed, the
 * rows of [x | h_prev] read in place, added to dW; 256x192x128, ~70 us against OpenBLAS's ~80)
 * run on the same tiles, where OpenBLAS was already close to that rate.
 * Each element of C is the sum over k in order of one FMA chain, whatever the tile or thread it
 * falls in, so results do not depend on the thread count. fg_rt_ok says which loops the CPU runs
 * (0: none, and the caller keeps its BLAS products); float64 stays on BLAS.
 */
#ifndef FASTGRAD_PANEL_TILES_H
#define FASTGRAD_PANEL_TILES_H

#include <stddef.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include "cpu_level.h"

/* pack b (k, n), rows ldb apart, into panels of nr columns (Note [Packed recurrent weights]):
 * panel q at bp + q * k * nr, its row kk at + kk * nr; columns past n are zeros */
static void fg_rt_pack(const float *b, ptrdiff_t ldb, ptrdiff_t k, ptrdiff_t n, ptrdiff_t nr,
                       float *bp) {
    for (ptrdiff_t j = 0; j < n; j += nr) {
        ptrdiff_t nc = n - j < nr ? n - j : nr;
        float *panel = bp + j * k;
        if (nc == 32 && nr == 32)       /* constant sizes: inlined moves, not calls */
            for (ptrdiff_t kk = 0; kk < k; kk++)
                memcpy(panel + kk * 32, b + kk * ldb + j, 32 * sizeof(float));
        else if (nc == 16 && nr == 16)
            for (ptrdiff_t kk = 0; kk < k; kk++)
                memcpy(panel + kk * 16, b + kk * ldb + j, 16 * sizeof(float));
        else
            for (ptrdiff_t kk = 0; kk < k; kk++) {
                memcpy(panel + kk * nr, b + kk * ldb + j, nc * sizeof(float));
                memset(panel + kk * nr + nc, 0, (nr - nc) * sizeof(float));
            }
    }
}

/* the same panels (rows kk < k of panels kp rows high) from w (n, k), rows ldw apart, the
 * operand transposed: row kk of the operand is column kk of w; blocks of 8 rows x 8 columns of
 * w transposed in registers (one float at a time ran ~10x slower). Only called when the CPU
 * has AVX2 (fg_rt_ok). */
static __attribute__((target("avx2"))) void
fg_rt_pack_t(const float *w, ptrdiff_t ldw, ptrdiff_t k, ptrdiff_t n, ptrdiff_t nr,
             ptrdiff_t kp, float *bp) {
    for (ptrdiff_t j0 = 0; j0 < n; j0 += nr) {
        float *panel = bp + j0 * kp;
        for (ptrdiff_t j = 0; j < nr; j += 8) {
            const float *src[8];
            int have = 0;
            for (int q = 0; q < 8; q++)
                if (j0 + j + q < n) { src[q] = w + (j0 + j + q) * ldw; have = q + 1; }
            ptrdiff_t kk = 0;
            if (have == 8)
                for (; kk + 8 <= k; kk += 8) {
                    __m256 r0 = _mm256_loadu_ps(src[0] + kk), r1 = _mm256_loadu_ps(src[1] + kk);
                    __m256 r2 = _mm256_loadu_ps(src[2] + kk), r3 = _mm256_loadu_ps(src[3] + kk);
                    __m256 r4 = _mm256_loadu_ps(src[4] + kk), r5 = _mm256_loadu_ps(src[5] + kk);
                    __m256 r6 = _mm256_loadu_ps(src[6] + kk), r7 = _mm256_loadu_ps(src[7] + kk);
                    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
                    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
                    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
                    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
                    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44);
                    __m256 u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
                    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44);
                    __m256 u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
                    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44);
                    __m256 u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
                    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44);
                    __m256 u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
                    float *d = panel + kk * nr + j;
                    _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
                    _mm256_storeu_ps(d + nr, _mm256_permute2f128_ps(u1, u5, 0x20));
                    _mm256_storeu_ps(d + 2 * nr, _mm256_permute2f128_ps(u2, u6, 0x20));
                    _mm256_storeu_ps(d + 3 * nr, _mm256_permute2f128_ps(u3, u7, 0x20));
                    _mm256_storeu_ps(d + 4 * nr, _mm256_permute2f128_ps(u0, u4, 0x31));
                    _mm256_storeu_ps(d + 5 * nr, _mm256_permute2f128_ps(u1, u5, 0x31));
                    _mm256_storeu_ps(d + 6 * nr, _mm256_permute2f128_ps(u2, u6, 0x31));
                    _mm256_storeu_ps(d + 7 * nr, _mm256_permute2f128_ps(u3, u7, 0x31));
                }
            for (; kk < k; kk++)
                for (int q = 0; q < 8; q++)
                    panel[kk * nr + j + q] = q < have ? src[q][kk] : 0.0f;
        }
    }
}

/* switch over a tile's rows n (1..6 or 1..8), each case a call with a constant */
#define FG_RT_SW6(n, CALL) switch (n) { case 1: CALL(1) break; case 2: CALL(2) break; \
    case 3: CALL(3) break; case 4: CALL(4) break; case 5: CALL(5) break; default: CALL(6) break; }
#define FG_RT_SW8(n, CALL) switch (n) { case 1: CALL(1) break; case 2: CALL(2) break; \
    case 3: CALL(3) break; case 4: CALL(4) break; case 5: CALL(5) break; case 6: CALL(6) break; \
    case 7: CALL(7) break; default: CALL(8) break; }

#define FG_RT_TARGET "avx2,fma"
#define FG_T(name) name##_avx2
#define FG_V __m256
#define FG_VL 8
#define FG_MR 6
#define FG_SW FG_RT_SW6
#define FG_VZ() _mm256_setzero_ps()
#define FG_VLDU(p) _mm256_loadu_ps(p)
#define FG_VADD(a, b) _mm256_add_ps(a, b)
#define FG_VST(p, v) _mm256_storeu_ps(p, v)
#define FG_VBC(p) _mm256_set1_ps(*(p))
#define FG_VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#include "panel_tiles_isa.h"

#define FG_RT_TARGET "avx512f"
#define FG_T(name) name##_avx512
#define FG_V __m512
#define FG_VL 16
#define FG_MR 8
#define FG_SW FG_RT_SW8
#define FG_VZ() _mm512_setzero_ps()
#define FG_VLDU(p) _mm512_loadu_ps(p)
#define FG_VADD(a, b) _mm512_add_ps(a, b)
#define FG_VST(p, v) _mm512_storeu_ps(p, v)
#define FG_VBC(p) _mm512_set1_ps(*(p))
#define FG_VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#include "panel_tiles_isa.h"

static int fg_rt_state = -1;

/* The loops the CPU runs: 2 AVX-512, 1 AVX2+FMA, 0 none (the caller's BLAS products); force: -1
 * keep, else the highest level allowed (tests run every path the CPU has) */
static int fg_rt_ok(int force) { return fg_pick_level(&fg_rt_state, force); }

/* columns per panel of the loops in use */
static ptrdiff_t fg_rt_nr(void) { return fg_rt_state == 2 ? 32 : 16; }

/* c (m, n), rows ldc apart, = (add ? c : 0) + a (m, k) @ the panels bp (fg_rt_pack, fg_rt_nr
 * columns each) of a (k, n) operand; a's element (i, kk) at a[i * sa + kk * sk] (a row-major
 * a: sa = its row stride, sk = 1; a transposed: sa = 1, sk = its row stride) */
static void fg_rt_mm(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t sa,
                     ptrdiff_t sk, const float *bp, float *c, ptrdiff_t ldc, int add) {
    ptrdiff_t one[3] = {0, 0, k};
    if (fg_rt_state == 2) fg_rt_mm_avx512(m, n, 1, one, a, sa, sk, bp, k, 32, c, ldc, add, NULL);
    else fg_rt_mm_avx2(m, n, 1, one, a, sa, sk, bp, k, 16, c, ldc, add, NULL);
}

/* the same with c = bias (n,) + a @ panels on every row (linear's forward: the bias rows are
 * not written first) */
static void fg_rt_mm_bias(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t sa,
                          ptrdiff_t sk, const float *bp, float *c, ptrdiff_t ldc,
                          const float *bias) {
    ptrdiff_t one[3] = {0, 0, k};
    if (fg_rt_state == 2) fg_rt_mm_avx512(m, n, 1, one, a, sa, sk, bp, k, 32, c, ldc, 0, bias);
    else fg_rt_mm_avx2(m, n, 1, one, a, sa, sk, bp, k, 16, c, ldc, 0, bias);
}

/* c (m, n) (+)= a @ b with b (k, n) read in place, its rows ldb apart, K in nseg segments of
 * rows (seg: pairs of a first row, the same row of a and b, and a count; Note [Rows of a row
 * block] in rnn_kernels.pyx): the whole panels straight from b, the last partial one (if any)
 * packed into scratch (K * fg_rt_nr floats, 64-byte aligned) */
static void fg_rt_mm_rows(ptrdiff_t m, ptrdiff_t n, ptrdiff_t nseg, const ptrdiff_t *seg,
                          const float *a, ptrdiff_t sa, ptrdiff_t sk, const float *b,
                          ptrdiff_t ldb, float *scratch, float *c, ptrdiff_t ldc, int add) {
    ptrdiff_t nr = fg_rt_nr(), whole = n / nr * nr, at = 0;
    ptrdiff_t tri[3 * 64];                  /* (a row, b row, count) per segment, <= 64 */
    if (nseg > 64) nseg = 64;
    for (ptrdiff_t q = 0; q < nseg; q++) {
        tri[3 * q] = tri[3 * q + 1] = seg[2 * q];
        tri[3 * q + 2] = seg[2 * q + 1];
    }
    if (fg_rt_state == 2)
        fg_rt_mm_avx512(m, whole, nseg, tri, a, sa, sk, b, 1, ldb, c, ldc, add, NULL);
    else fg_rt_mm_avx2(m, whole, nseg, tri, a, sa, sk, b, 1, ldb, c, ldc, add, NULL);
    if (whole == n) return;
    for (ptrdiff_t q = 0; q < nseg; q++) {  /* the segments' rows of b, one after another */
        fg_rt_pack(b + seg[2 * q] * ldb + whole, ldb, seg[2 * q + 1], n - whole, nr,
                   scratch + at * nr);
        tri[3 * q + 1] = at;
        at += seg[2 * q + 1];
    }
    if (fg_rt_state == 2)
        fg_rt_mm_avx512(m, n - whole, nseg, tri, a, sa, sk, scratch, at, 32, c + whole, ldc, add,
                        NULL);
    else
        fg_rt_mm_avx2(m, n - whole, nseg, tri, a, sa, sk, scratch, at, 16, c + whole, ldc, add,
                      NULL);
}

#else   /* not x86-64 GCC/Clang: never taken (fg_rt_ok is 0) */

static int fg_rt_ok(int force) { (void)force; return 0; }
static ptrdiff_t fg_rt_nr(void) { return 16; }
static void fg_rt_pack(const float *b, ptrdiff_t ldb, ptrdiff_t k, ptrdiff_t n, ptrdiff_t nr,
                       float *bp) {}
static void fg_rt_pack_t(const float *w, ptrdiff_t ldw, ptrdiff_t k, ptrdiff_t n, ptrdiff_t nr,
                         ptrdiff_t kp, float *bp) {}
static void fg_rt_mm(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t sa,
                     ptrdiff_t sk, const float *bp, float *c, ptrdiff_t ldc, int add) {}
static void fg_rt_mm_bias(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t sa,
                          ptrdiff_t sk, const float *bp, float *c, ptrdiff_t ldc,
                          const float *bias) {}
static void fg_rt_mm_rows(ptrdiff_t m, ptrdiff_t n, ptrdiff_t nseg, const ptrdiff_t *seg,
                          const float *a, ptrdiff_t sa, ptrdiff_t sk, const float *b,
                          ptrdiff_t ldb, float *scratch, float *c, ptrdiff_t ldc, int add) {}

#endif
#endif
