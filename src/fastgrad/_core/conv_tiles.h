/* Register-tiled float32 convolution loops on shifted rows, for AVX2+FMA and AVX-512 CPUs.
 *
 * Note [Convolution tiles]
 * With unit stride the column matrix of a sample is, row k = (c, ki, kj), the padded plane xp
 * read from offset off[k] (Note [Shifted rows for unit stride] in conv_kernels.pyx): a run of Lw
 * elements. These loops never write that matrix out: they read its rows straight from the plane
 * inside register tiles, as a GEMM micro-kernel reads a packed panel. For LeNet-sized layers
 * (K = C*kh*kw of 25-150, O of 6-16, Lw of 136-892) copying the matrix, one BLAS call per sample
 * and per-call packing cost as much as the products themselves.
 *   forward       yw[o, l] = sum_k w[o, k] * xp[off[k] + l]        6 o x 2 vectors of l per tile
 *   weight grad   dw[o, k] += sum_l gw[o, l] * xp[off[k] + l]     4 o x 3 k per tile
 * l runs over whole blocks of 32 (LwR = Lw rounded up), so the caller gives xp 32 readable
 * zeros past its C*Hp*Wp and gw (the widened output gradient) zeros in columns Lw..LwR-1: a
 * read past the run then only meets a zero, and the columns >= Lw of yw are not used.
 * When O is a multiple of the vector's lanes (fg_ct_lanes), channel tiles run the vectors along
 * output channels over the OH*OW real positions only (conv_tiles_isa.h).
 * The input gradient stays on BLAS: the same tiles adding their rows into the plane at offsets
 * one element apart stall on store-to-load forwarding (LeNet's second layer: 1.4x slower).
 * Sums run in a fixed order (tiles, then l, then lanes), so the results do not depend on the
 * thread that computes a sample.
 * The loops (conv_tiles_isa.h) are compiled twice, for AVX2+FMA and for AVX-512 (target
 * attributes; two 512-bit FMA units do ~1.8x the 256-bit work here); fg_ct_ok says which one the
 * CPU runs, and the caller takes the BLAS path when neither.
 */
#ifndef FASTGRAD_CONV_TILES_H
#define FASTGRAD_CONV_TILES_H

#include <stddef.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include "cpu_level.h"

/* switch over a tile's size n (1..6 or 1..12), each case a call with a constant */
#define FG_CT_SW6(n, CALL) switch (n) { case 1: CALL(1) break; case 2: CALL(2) break; \
    case 3: CALL(3) break; case 4: CALL(4) break; case 5: CALL(5) break; default: CALL(6) break; }
#define FG_CT_SW12(n, CALL) switch (n) { case 1: CALL(1) break; case 2: CALL(2) break; \
    case 3: CALL(3) break; case 4: CALL(4) break; case 5: CALL(5) break; case 6: CALL(6) break; \
    case 7: CALL(7) break; case 8: CALL(8) break; case 9: CALL(9) break; \
    case 10: CALL(10) break; case 11: CALL(11) break; default: CALL(12) break; }

#define FG_CT_TARGET "avx2,fma"
#define FG_T(name) name##_avx2
#define FG_V __m256
#define FG_VL 8
#define FG_VZ() _mm256_setzero_ps()
#define FG_VLD(p) _mm256_loadu_ps(p)
#define FG_VST(p, v) _mm256_storeu_ps(p, v)
#define FG_VBC(p) _mm256_broadcast_ss(p)
#define FG_VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define FG_CH_MR 6
#define FG_CH_NV 2
#define FG_CH_SW FG_CT_SW6
static inline __attribute__((always_inline, target("avx2,fma"))) float fg_ct_hsum_avx2(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#define FG_VHSUM(v) fg_ct_hsum_avx2(v)
#define FG_VADD(a, b) _mm256_add_ps(a, b)
/* lanes lo..hi-1 of p, zeros elsewhere (the others are not read) */
static inline __attribute__((always_inline, target("avx2,fma"))) __m256
fg_ct_ldm_avx2(const float *p, int lo, int hi) {
    __m256i l = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i m = _mm256_and_si256(_mm256_cmpgt_epi32(l, _mm256_set1_epi32(lo - 1)),
                                 _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), l));
    return _mm256_maskload_ps(p, m);
}
#define FG_VLDM(p, lo, hi) fg_ct_ldm_avx2(p, lo, hi)
#include "conv_tiles_isa.h"

#define FG_CT_TARGET "avx512f"
#define FG_T(name) name##_avx512
#define FG_V __m512
#define FG_VL 16
#define FG_VZ() _mm512_setzero_ps()
#define FG_VLD(p) _mm512_loadu_ps(p)
#define FG_VST(p, v) _mm512_storeu_ps(p, v)
#define FG_VBC(p) _mm512_set1_ps(*(p))
#define FG_VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define FG_VHSUM(v) _mm512_reduce_add_ps(v)
#define FG_VADD(a, b) _mm512_add_ps(a, b)
#define FG_VLDM(p, lo, hi) \
    _mm512_maskz_loadu_ps((__mmask16)(((1u << (hi)) - 1) & ~((1u << (lo)) - 1)), p)
#define FG_CH_MR 12
#define FG_CH_NV 1
#define FG_CH_SW FG_CT_SW12
#include "conv_tiles_isa.h"

static int fg_ct_state = -1;

/* The loops the CPU runs: 2 AVX-512, 1 AVX2+FMA, 0 none (the caller's BLAS path); force: -1
 * keep, else the highest level allowed (tests run every path the CPU has) */
static int fg_ct_ok(int force) { return fg_pick_level(&fg_ct_state, force); }

/* lanes of the vector the channel tiles run along output channels */
static int fg_ct_lanes(void) { return fg_ct_state == 2 ? 16 : 8; }

static void fg_ct_fwd(const float *xp, const ptrdiff_t *off, ptrdiff_t K, const float *w,
                      ptrdiff_t O, float *yw, ptrdiff_t LwR) {
    if (fg_ct_state == 2) fg_ct_fwd_avx512(xp, off, K, w, O, yw, LwR);
    else fg_ct_fwd_avx2(xp, off, K, w, O, yw, LwR);
}

static void fg_ct_wgrad(const float *xp, const ptrdiff_t *off, ptrdiff_t K, const float *gw,
                        ptrdiff_t O, ptrdiff_t LwR, float *dw) {
    if (fg_ct_state == 2) fg_ct_wgrad_avx512(xp, off, K, gw, O, LwR, dw);
    else fg_ct_wgrad_avx2(xp, off, K, gw, O, LwR, dw);
}

static void fg_ct_fwd_ch(const float *xp, const ptrdiff_t *off, ptrdiff_t K, const float *wt,
                         ptrdiff_t O, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t Wp,
                         const float *bias, float *y) {
    if (fg_ct_state == 2) fg_ct_fwd_ch_avx512(xp, off, K, wt, O, OH, OW, Wp, bias, y);
    else fg_ct_fwd_ch_avx2(xp, off, K, wt, O, OH, OW, Wp, bias, y);
}

static void fg_ct_wgrad_ch(const float *xp, const ptrdiff_t *off, ptrdiff_t K, const float *gt,
                           ptrdiff_t O, const ptrdiff_t *pos, ptrdiff_t P, float *dw) {
    if (fg_ct_state == 2) fg_ct_wgrad_ch_avx512(xp, off, K, gt, O, pos, P, dw);
    else fg_ct_wgrad_ch_avx2(xp, off, K, gt, O, pos, P, dw);
}

static void fg_ct_unshift(const float *gc, ptrdiff_t Lw, const ptrdiff_t *off, ptrdiff_t K,
                          ptrdiff_t C, ptrdiff_t plane, float *dst) {
    if (fg_ct_state == 2) fg_ct_unshift_avx512(gc, Lw, off, K, C, plane, dst);
    else fg_ct_unshift_avx2(gc, Lw, off, K, C, plane, dst);
}

/* y (O, OH, OW) = the wide rows yw (O, LwR; output row oh at column oh*Wp) + bias (NULL: none) */
static __attribute__((target("avx2,fma"))) void
fg_ct_crop(const float *restrict yw, ptrdiff_t LwR, ptrdiff_t O, ptrdiff_t OH, ptrdiff_t OW,
           ptrdiff_t Wp, const float *bias, float *restrict y) {
    for (ptrdiff_t o = 0; o < O; o++) {
        float b = bias ? bias[o] : 0.0f;
        for (ptrdiff_t oh = 0; oh < OH; oh++) {
            const float *restrict src = yw + o * LwR + oh * Wp;
            float *restrict dst = y + (o * OH + oh) * OW;
            for (ptrdiff_t ow = 0; ow < OW; ow++) dst[ow] = src[ow] + b;
        }
    }
}

/* s[o] += the sum of row o of g (O, n), in 8 lanes summed in a fixed order */
static __attribute__((target("avx2,fma"))) void fg_ct_row_sums(const float *g, ptrdiff_t O,
                                                                ptrdiff_t n, float *s) {
    for (ptrdiff_t o = 0; o < O; o++) {
        const float *r = g + o * n;
        __m256 a = _mm256_setzero_ps();
        ptrdiff_t i = 0;
        for (; i + 8 <= n; i += 8) a = _mm256_add_ps(a, _mm256_loadu_ps(r + i));
        float t = fg_ct_hsum_avx2(a);
        for (; i < n; i++) t += r[i];
        s[o] += t;
    }
}

#else   /* not x86-64 GCC/Clang: never taken (fg_ct_ok is 0) */

static int fg_ct_ok(int force) { (void)force; return 0; }
static int fg_ct_lanes(void) { return 8; }
static void fg_ct_fwd(const float *xp, const ptrdiff_t *off, ptrdiff_t K, const float *w,
                      ptrdiff_t O, float *yw, ptrdiff_t LwR) {}
static void fg_ct_wgrad(const float *xp, const ptrdiff_t *off, ptrdiff_t K, const float *gw,
                        ptrdiff_t O, ptrdiff_t LwR, float *dw) {}
static void fg_ct_row_sums(const float *g, ptrdiff_t O, ptrdiff_t n, float *s) {}
static void fg_ct_crop(const float *yw, ptrdiff_t LwR, ptrdiff_t O, ptrdiff_t OH, ptrdiff_t OW,
                       ptrdiff_t Wp, const float *bias, float *y) {}
static void fg_ct_unshift(const float *gc, ptrdiff_t Lw, const ptrdiff_t *off, ptrdiff_t K,
                          ptrdiff_t C, ptrdiff_t plane, float *dst) {}
static void fg_ct_fwd_ch(const float *xp, const ptrdiff_t *off, ptrdiff_t K, const float *wt,
                         ptrdiff_t O, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t Wp,
                         const float *bias, float *y) {}
static void fg_ct_wgrad_ch(const float *xp, const ptrdiff_t *off, ptrdiff_t K, const float *gt,
                           ptrdiff_t O, const ptrdiff_t *pos, ptrdiff_t P, float *dw) {}

#endif
#endif
