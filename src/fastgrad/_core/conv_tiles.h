/* Register-tiled float32 convolution loops on shifted rows, for AVX2+FMA CPUs.
 *
 * Note [Convolution tiles]
 * With unit stride the column matrix of a sample is, row k = (c, ki, kj), the padded plane xp
 * read from offset off[k] (Note [Shifted rows for unit stride] in conv_kernels.pyx): a run of Lw
 * elements. These loops never write that matrix out: they read its rows straight from the plane
 * inside register tiles, as a GEMM micro-kernel reads a packed panel. For LeNet-sized layers
 * (K = C*kh*kw of 25-150, O of 6-16, Lw of 136-892) copying the matrix, one BLAS call per sample
 * and per-call packing cost as much as the products themselves.
 *   forward       yw[o, l] = sum_k w[o, k] * xp[off[k] + l]        6 o x 16 l per tile
 *   weight grad   dw[o, k] += sum_l gw[o, l] * xp[off[k] + l]     4 o x 3 k per tile
 * l runs over whole blocks of 16 (Lw16 = Lw rounded up), so the caller gives xp 16 readable
 * zeros past its C*Hp*Wp and gw (the widened output gradient) zeros in columns Lw..Lw16-1: a
 * read past the run then only meets a zero, and the columns >= Lw of yw are not used.
 * When O is a multiple of 8, channel tiles (below) compute only the OH*OW real positions.
 * The input gradient stays on BLAS: the same tiles adding their rows into the plane at offsets
 * one element apart stall on store-to-load forwarding (LeNet's second layer: 1.4x slower).
 * Sums run in a fixed order (tiles, then l, then lanes), so the results do not depend on the
 * thread that computes a sample.
 * The loops are compiled for AVX2+FMA only (target attribute); fg_ct_ok says whether the CPU has
 * it, and the caller takes the BLAS path otherwise.
 */
#ifndef FASTGRAD_CONV_TILES_H
#define FASTGRAD_CONV_TILES_H

#include <stddef.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define FG_CT_ATTR __attribute__((target("avx2,fma")))
#define FG_CT_INLINE static inline __attribute__((always_inline, target("avx2,fma")))

static int fg_ct_state = -1;

/* 1 if the tiled loops can run here (AVX2 and FMA), else 0; force: 0 off, 1 on if possible,
 * -1 keep (tests run both paths) */
static int fg_ct_ok(int force) {
    if (fg_ct_state < 0 || force >= 0) {
        __builtin_cpu_init();
        int have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        fg_ct_state = have && force != 0;
    }
    return fg_ct_state;
}

FG_CT_INLINE float fg_ct_hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* mr rows of o (constant after inlining) x 16 columns from l */
FG_CT_INLINE void fg_ct_fwd_tile(const float *xp, const ptrdiff_t *off, ptrdiff_t K,
                                 const float *w, float *yw, ptrdiff_t Lw16, ptrdiff_t l,
                                 const int mr) {
    __m256 a0[6], a1[6];
    for (int r = 0; r < mr; r++) { a0[r] = _mm256_setzero_ps(); a1[r] = _mm256_setzero_ps(); }
    for (ptrdiff_t k = 0; k < K; k++) {
        const float *src = xp + off[k] + l;
        __m256 x0 = _mm256_loadu_ps(src), x1 = _mm256_loadu_ps(src + 8);
        for (int r = 0; r < mr; r++) {
            __m256 wv = _mm256_broadcast_ss(w + r * K + k);
            a0[r] = _mm256_fmadd_ps(wv, x0, a0[r]);
            a1[r] = _mm256_fmadd_ps(wv, x1, a1[r]);
        }
    }
    for (int r = 0; r < mr; r++) {
        _mm256_storeu_ps(yw + r * Lw16 + l, a0[r]);
        _mm256_storeu_ps(yw + r * Lw16 + l + 8, a1[r]);
    }
}

/* yw (O, Lw16) = w (O, K) applied to the shifted rows of xp */
FG_CT_ATTR static void fg_ct_fwd(const float *xp, const ptrdiff_t *off, ptrdiff_t K,
                                 const float *w, ptrdiff_t O, float *yw, ptrdiff_t Lw16) {
    for (ptrdiff_t o = 0; o < O; o += 6) {
        const float *wo = w + o * K;
        float *yo = yw + o * Lw16;
        for (ptrdiff_t l = 0; l < Lw16; l += 16) {
            switch (O - o) {
            case 1: fg_ct_fwd_tile(xp, off, K, wo, yo, Lw16, l, 1); break;
            case 2: fg_ct_fwd_tile(xp, off, K, wo, yo, Lw16, l, 2); break;
            case 3: fg_ct_fwd_tile(xp, off, K, wo, yo, Lw16, l, 3); break;
            case 4: fg_ct_fwd_tile(xp, off, K, wo, yo, Lw16, l, 4); break;
            case 5: fg_ct_fwd_tile(xp, off, K, wo, yo, Lw16, l, 5); break;
            default: fg_ct_fwd_tile(xp, off, K, wo, yo, Lw16, l, 6); break;
            }
        }
    }
}

/* mo rows of o x nk rows of k, summed over all Lw16 columns, added into dw (O, K) */
FG_CT_INLINE void fg_ct_wgrad_tile(const float *xp, const ptrdiff_t *off, ptrdiff_t K,
                                   const float *gw, ptrdiff_t Lw16, float *dw, const int mo,
                                   const int nk) {
    __m256 a[4][3];
    for (int r = 0; r < mo; r++)
        for (int j = 0; j < nk; j++) a[r][j] = _mm256_setzero_ps();
    for (ptrdiff_t l = 0; l < Lw16; l += 8) {
        __m256 x[3];
        for (int j = 0; j < nk; j++) x[j] = _mm256_loadu_ps(xp + off[j] + l);
        for (int r = 0; r < mo; r++) {
            __m256 g = _mm256_loadu_ps(gw + r * Lw16 + l);
            for (int j = 0; j < nk; j++) a[r][j] = _mm256_fmadd_ps(g, x[j], a[r][j]);
        }
    }
    for (int r = 0; r < mo; r++)
        for (int j = 0; j < nk; j++) dw[r * K + j] += fg_ct_hsum(a[r][j]);
}

#define FG_CT_WG(MO) \
    switch (nk) { \
    case 1: fg_ct_wgrad_tile(xp, off + k, K, go, Lw16, dw + o * K + k, MO, 1); break; \
    case 2: fg_ct_wgrad_tile(xp, off + k, K, go, Lw16, dw + o * K + k, MO, 2); break; \
    default: fg_ct_wgrad_tile(xp, off + k, K, go, Lw16, dw + o * K + k, MO, 3); break; }

/* dw (O, K) += gw (O, Lw16) @ the shifted rows of xp, transposed */
FG_CT_ATTR static void fg_ct_wgrad(const float *xp, const ptrdiff_t *off, ptrdiff_t K,
                                   const float *gw, ptrdiff_t O, ptrdiff_t Lw16, float *dw) {
    for (ptrdiff_t o = 0; o < O; o += 4) {
        const float *go = gw + o * Lw16;
        for (ptrdiff_t k = 0; k < K; k += 3) {
            ptrdiff_t nk = K - k;
            switch (O - o) {
            case 1: FG_CT_WG(1) break;
            case 2: FG_CT_WG(2) break;
            case 3: FG_CT_WG(3) break;
            default: FG_CT_WG(4) break;
            }
        }
    }
}

/* Channel tiles: when O is a multiple of 8 the vector runs along output channels instead, and a
 * tile is mr output positions (pos[p]: the position's offset in the plane) x nv*8 channels, so
 * only the OH*OW real positions are computed (the wide rows compute Lw16, e.g. 144 columns for
 * 100 positions at LeNet's second layer). wt is the weight transposed, (K, O); gt the output
 * gradient transposed, (P, O). */
FG_CT_INLINE void fg_ct_fwd_ch_tile(const float *xp, const ptrdiff_t *off, ptrdiff_t K,
                                    const float *wt, ptrdiff_t O, const ptrdiff_t *pos,
                                    ptrdiff_t P, const float *bias, float *y, const int mr,
                                    const int nv) {
    __m256 a[6][2];
    const float *base[6];
    for (int r = 0; r < mr; r++) {
        base[r] = xp + pos[r];
        for (int v = 0; v < nv; v++) a[r][v] = _mm256_setzero_ps();
    }
    for (ptrdiff_t k = 0; k < K; k++) {
        __m256 w[2];
        for (int v = 0; v < nv; v++) w[v] = _mm256_loadu_ps(wt + k * O + 8 * v);
        ptrdiff_t ok = off[k];
        for (int r = 0; r < mr; r++) {
            __m256 xv = _mm256_broadcast_ss(base[r] + ok);
            for (int v = 0; v < nv; v++) a[r][v] = _mm256_fmadd_ps(xv, w[v], a[r][v]);
        }
    }
    float t[16];
    for (int r = 0; r < mr; r++) {
        for (int v = 0; v < nv; v++) _mm256_storeu_ps(t + 8 * v, a[r][v]);
        for (int i = 0; i < 8 * nv; i++) y[i * P + r] = t[i] + (bias ? bias[i] : 0.0f);
    }
}

#define FG_CT_FWD_CH(NV) \
    switch (P - p) { \
    case 1: fg_ct_fwd_ch_tile(xp, off, K, wo, O, pos + p, P, bo, yo + p, 1, NV); break; \
    case 2: fg_ct_fwd_ch_tile(xp, off, K, wo, O, pos + p, P, bo, yo + p, 2, NV); break; \
    case 3: fg_ct_fwd_ch_tile(xp, off, K, wo, O, pos + p, P, bo, yo + p, 3, NV); break; \
    case 4: fg_ct_fwd_ch_tile(xp, off, K, wo, O, pos + p, P, bo, yo + p, 4, NV); break; \
    case 5: fg_ct_fwd_ch_tile(xp, off, K, wo, O, pos + p, P, bo, yo + p, 5, NV); break; \
    default: fg_ct_fwd_ch_tile(xp, off, K, wo, O, pos + p, P, bo, yo + p, 6, NV); break; }

/* y (O, P) = wt^T applied to the shifted rows of xp at the positions pos (+ bias, NULL: none) */
FG_CT_ATTR static void fg_ct_fwd_ch(const float *xp, const ptrdiff_t *off, ptrdiff_t K,
                                    const float *wt, ptrdiff_t O, const ptrdiff_t *pos,
                                    ptrdiff_t P, const float *bias, float *y) {
    for (ptrdiff_t o = 0; o < O; o += 16) {
        const float *wo = wt + o;
        const float *bo = bias ? bias + o : NULL;
        float *yo = y + o * P;
        for (ptrdiff_t p = 0; p < P; p += 6) {
            if (O - o >= 16) { FG_CT_FWD_CH(2) } else { FG_CT_FWD_CH(1) }
        }
    }
}

FG_CT_INLINE void fg_ct_wgrad_ch_tile(const float *xp, const ptrdiff_t *off, ptrdiff_t K,
                                      const float *gt, ptrdiff_t O, const ptrdiff_t *pos,
                                      ptrdiff_t P, float *dw, const int nk, const int nv) {
    __m256 a[6][2];
    for (int j = 0; j < nk; j++)
        for (int v = 0; v < nv; v++) a[j][v] = _mm256_setzero_ps();
    for (ptrdiff_t p = 0; p < P; p++) {
        __m256 g[2];
        for (int v = 0; v < nv; v++) g[v] = _mm256_loadu_ps(gt + p * O + 8 * v);
        const float *b = xp + pos[p];
        for (int j = 0; j < nk; j++) {
            __m256 xv = _mm256_broadcast_ss(b + off[j]);
            for (int v = 0; v < nv; v++) a[j][v] = _mm256_fmadd_ps(xv, g[v], a[j][v]);
        }
    }
    float t[16];
    for (int j = 0; j < nk; j++) {
        for (int v = 0; v < nv; v++) _mm256_storeu_ps(t + 8 * v, a[j][v]);
        for (int i = 0; i < 8 * nv; i++) dw[i * K + j] += t[i];
    }
}

#define FG_CT_WG_CH(NV) \
    switch (K - k) { \
    case 1: fg_ct_wgrad_ch_tile(xp, off + k, K, go, O, pos, P, dw + o * K + k, 1, NV); break; \
    case 2: fg_ct_wgrad_ch_tile(xp, off + k, K, go, O, pos, P, dw + o * K + k, 2, NV); break; \
    case 3: fg_ct_wgrad_ch_tile(xp, off + k, K, go, O, pos, P, dw + o * K + k, 3, NV); break; \
    case 4: fg_ct_wgrad_ch_tile(xp, off + k, K, go, O, pos, P, dw + o * K + k, 4, NV); break; \
    case 5: fg_ct_wgrad_ch_tile(xp, off + k, K, go, O, pos, P, dw + o * K + k, 5, NV); break; \
    default: fg_ct_wgrad_ch_tile(xp, off + k, K, go, O, pos, P, dw + o * K + k, 6, NV); break; }

/* dw (O, K) += gt^T (O, P) @ the shifted rows of xp at the positions pos, transposed */
FG_CT_ATTR static void fg_ct_wgrad_ch(const float *xp, const ptrdiff_t *off, ptrdiff_t K,
                                      const float *gt, ptrdiff_t O, const ptrdiff_t *pos,
                                      ptrdiff_t P, float *dw) {
    for (ptrdiff_t o = 0; o < O; o += 16) {
        const float *go = gt + o;
        for (ptrdiff_t k = 0; k < K; k += 6) {
            if (O - o >= 16) { FG_CT_WG_CH(2) } else { FG_CT_WG_CH(1) }
        }
    }
}

/* s[o] += the sum of row o of g (O, n), in 8 lanes summed in a fixed order */
FG_CT_ATTR static void fg_ct_row_sums(const float *g, ptrdiff_t O, ptrdiff_t n, float *s) {
    for (ptrdiff_t o = 0; o < O; o++) {
        const float *r = g + o * n;
        __m256 a = _mm256_setzero_ps();
        ptrdiff_t i = 0;
        for (; i + 8 <= n; i += 8) a = _mm256_add_ps(a, _mm256_loadu_ps(r + i));
        float t = fg_ct_hsum(a);
        for (; i < n; i++) t += r[i];
        s[o] += t;
    }
}

#else   /* not x86-64 GCC/Clang: never taken (fg_ct_ok is 0) */

static int fg_ct_ok(int force) { (void)force; return 0; }
static void fg_ct_fwd(const float *xp, const ptrdiff_t *off, ptrdiff_t K, const float *w,
                      ptrdiff_t O, float *yw, ptrdiff_t Lw16) {}
static void fg_ct_wgrad(const float *xp, const ptrdiff_t *off, ptrdiff_t K, const float *gw,
                        ptrdiff_t O, ptrdiff_t Lw16, float *dw) {}
static void fg_ct_row_sums(const float *g, ptrdiff_t O, ptrdiff_t n, float *s) {}
static void fg_ct_fwd_ch(const float *xp, const ptrdiff_t *off, ptrdiff_t K, const float *wt,
                         ptrdiff_t O, const ptrdiff_t *pos, ptrdiff_t P, const float *bias,
                         float *y) {}
static void fg_ct_wgrad_ch(const float *xp, const ptrdiff_t *off, ptrdiff_t K, const float *gt,
                           ptrdiff_t O, const ptrdiff_t *pos, ptrdiff_t P, float *dw) {}

#endif
#endif
