/* float32 max pooling over 2x2 windows at stride 2 (max_pool2d(2)) with AVX2, forward and
 * backward (Note [Pooling windows] in ops_pool.pyx).
 *
 * Eight outputs at a time: the even and odd columns of the two input rows are split apart by
 * shuffles, each row's pair reduced first (the right element wins if greater or NaN), then the
 * two rows (the lower wins if greater or NaN). That tournament picks the element the row-major
 * scan picks: with no NaN the first maximum (ties go left, then up), otherwise the last NaN. A
 * row's last OW % 8 outputs use masked loads and stores. The backward writes each window's four
 * elements (the gradient or zero) instead of zeroing the plane and adding at the indices.
 * fg_pp_ok says whether the CPU has AVX2 (the caller runs its scalar loops otherwise).
 */
#ifndef FASTGRAD_POOL_PAIRS_H
#define FASTGRAD_POOL_PAIRS_H

#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

static int fg_pp_state = -1;

static int fg_pp_ok(void) {
    if (fg_pp_state < 0) {
        __builtin_cpu_init();
        fg_pp_state = __builtin_cpu_supports("avx2") != 0;
    }
    return fg_pp_state;
}

/* n (<= 8, a constant 8 except at a row's end) outputs from column 2*ow of rows r0, r0 + W:
 * values to y, plane indices to idx; with n < 8 the loads and stores are masked, so nothing
 * outside the 2n columns is read or written */
static inline __attribute__((always_inline, target("avx2"))) void
fg_pp_block(const float *r0, ptrdiff_t W, float *y, int64_t *idx, int32_t first, int n) {
    const float *r1 = r0 + W;
    __m256 a, b, c, d;
    __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i om = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lanes);      /* output lanes < n */
    if (n == 8) {
        a = _mm256_loadu_ps(r0); b = _mm256_loadu_ps(r0 + 8);
        c = _mm256_loadu_ps(r1); d = _mm256_loadu_ps(r1 + 8);
    } else {
        __m256i ma = _mm256_cmpgt_epi32(_mm256_set1_epi32(2 * n), lanes);
        __m256i mb = _mm256_cmpgt_epi32(_mm256_set1_epi32(2 * n - 8), lanes);
        a = _mm256_maskload_ps(r0, ma); b = _mm256_maskload_ps(r0 + 8, mb);
        c = _mm256_maskload_ps(r1, ma); d = _mm256_maskload_ps(r1 + 8, mb);
    }
    /* shuffle_ps works within 128-bit lanes: reorder the 64-bit pairs to column order */
    __m256 l0 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(
        _mm256_shuffle_ps(a, b, 0x88)), 0xD8));
    __m256 q0 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(
        _mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
    __m256 l1 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(
        _mm256_shuffle_ps(c, d, 0x88)), 0xD8));
    __m256 q1 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(
        _mm256_shuffle_ps(c, d, 0xDD)), 0xD8));
    __m256 u0 = _mm256_or_ps(_mm256_cmp_ps(q0, l0, _CMP_GT_OQ), _mm256_cmp_ps(q0, q0, _CMP_UNORD_Q));
    __m256 u1 = _mm256_or_ps(_mm256_cmp_ps(q1, l1, _CMP_GT_OQ), _mm256_cmp_ps(q1, q1, _CMP_UNORD_Q));
    __m256 m0 = _mm256_blendv_ps(l0, q0, u0), m1 = _mm256_blendv_ps(l1, q1, u1);
    __m256i one = _mm256_set1_epi32(1);
    __m256i k0 = _mm256_and_si256(_mm256_castps_si256(u0), one);
    __m256i k1 = _mm256_add_epi32(_mm256_and_si256(_mm256_castps_si256(u1), one),
                                  _mm256_set1_epi32((int32_t)W));
    __m256 u = _mm256_or_ps(_mm256_cmp_ps(m1, m0, _CMP_GT_OQ), _mm256_cmp_ps(m1, m1, _CMP_UNORD_Q));
    __m256i k = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(k0),
                                                     _mm256_castsi256_ps(k1), u));
    k = _mm256_add_epi32(k, _mm256_add_epi32(_mm256_set1_epi32(first),
                                             _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)));
    __m256 m = _mm256_blendv_ps(m0, m1, u);
    __m256i klo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(k));
    __m256i khi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(k, 1));
    if (n == 8) {
        _mm256_storeu_ps(y, m);
        _mm256_storeu_si256((__m256i *)idx, klo);
        _mm256_storeu_si256((__m256i *)(idx + 4), khi);
    } else {
        _mm256_maskstore_ps(y, om, m);
        _mm256_maskstore_epi64((long long *)idx, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(om)),
                               klo);
        _mm256_maskstore_epi64((long long *)(idx + 4),
                               _mm256_cvtepi32_epi64(_mm256_extracti128_si256(om, 1)), khi);
    }
}

/* One plane (H, W) to (OH, OW) outputs; H*W < 2^31 (the caller checks) */
static __attribute__((target("avx2"))) void
fg_pp_plane(const float *x, ptrdiff_t W, float *y, int64_t *idx, ptrdiff_t OH, ptrdiff_t OW) {
    for (ptrdiff_t oh = 0; oh < OH; oh++) {
        const float *r0 = x + 2 * oh * W;
        float *yr = y + oh * OW;
        int64_t *ir = idx + oh * OW;
        int32_t base = (int32_t)(2 * oh * W);
        ptrdiff_t ow = 0;
        for (; ow + 8 <= OW; ow += 8)
            fg_pp_block(r0 + 2 * ow, W, yr + ow, ir + ow, base + 2 * (int32_t)ow, 8);
        if (ow < OW)
            fg_pp_block(r0 + 2 * ow, W, yr + ow, ir + ow, base + 2 * (int32_t)ow, (int)(OW - ow));
    }
}

/* n (<= 8) outputs' gradients g routed to their windows: each window's four elements written,
 * g where idx points, 0 elsewhere (windows do not overlap, so nothing is summed) */
static inline __attribute__((always_inline, target("avx2"))) void
fg_pp_back_block(const float *g, const int64_t *idx, float *r0, ptrdiff_t W, int32_t first,
                 int n) {
    __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i om = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lanes);
    __m256 gv;
    __m256i lo, hi;
    if (n == 8) {
        gv = _mm256_loadu_ps(g);
        lo = _mm256_loadu_si256((const __m256i *)idx);
        hi = _mm256_loadu_si256((const __m256i *)(idx + 4));
    } else {
        gv = _mm256_maskload_ps(g, om);
        lo = _mm256_maskload_epi64((const long long *)idx,
                                   _mm256_cvtepi32_epi64(_mm256_castsi256_si128(om)));
        hi = _mm256_maskload_epi64((const long long *)(idx + 4),
                                   _mm256_cvtepi32_epi64(_mm256_extracti128_si256(om, 1)));
    }
    /* the low 32 bits of each index (plane indices are below 2^31), in output order */
    __m256i sel = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    __m256i k = _mm256_blend_epi32(_mm256_permutevar8x32_epi32(lo, sel),
                                   _mm256_permutevar8x32_epi32(hi, sel), 0xF0);
    k = _mm256_sub_epi32(k, _mm256_add_epi32(_mm256_set1_epi32(first),
                                             _mm256_add_epi32(lanes, lanes)));
    __m256i w = _mm256_set1_epi32((int32_t)W);
    __m256 e0 = _mm256_and_ps(gv, _mm256_castsi256_ps(_mm256_cmpeq_epi32(k, _mm256_setzero_si256())));
    __m256 e1 = _mm256_and_ps(gv, _mm256_castsi256_ps(_mm256_cmpeq_epi32(k, _mm256_set1_epi32(1))));
    __m256 e2 = _mm256_and_ps(gv, _mm256_castsi256_ps(_mm256_cmpeq_epi32(k, w)));
    __m256 e3 = _mm256_and_ps(gv, _mm256_castsi256_ps(
        _mm256_cmpeq_epi32(k, _mm256_add_epi32(w, _mm256_set1_epi32(1)))));
    /* interleave even and odd columns back: [e0 o0 e1 o1 ...] */
    __m256 a = _mm256_unpacklo_ps(e0, e1), b = _mm256_unpackhi_ps(e0, e1);
    __m256 c = _mm256_unpacklo_ps(e2, e3), d = _mm256_unpackhi_ps(e2, e3);
    __m256 t0 = _mm256_permute2f128_ps(a, b, 0x20), t1 = _mm256_permute2f128_ps(a, b, 0x31);
    __m256 t2 = _mm256_permute2f128_ps(c, d, 0x20), t3 = _mm256_permute2f128_ps(c, d, 0x31);
    float *r1 = r0 + W;
    if (n == 8) {
        _mm256_storeu_ps(r0, t0); _mm256_storeu_ps(r0 + 8, t1);
        _mm256_storeu_ps(r1, t2); _mm256_storeu_ps(r1 + 8, t3);
    } else {
        __m256i ma = _mm256_cmpgt_epi32(_mm256_set1_epi32(2 * n), lanes);
        __m256i mb = _mm256_cmpgt_epi32(_mm256_set1_epi32(2 * n - 8), lanes);
        _mm256_maskstore_ps(r0, ma, t0); _mm256_maskstore_ps(r0 + 8, mb, t1);
        _mm256_maskstore_ps(r1, ma, t2); _mm256_maskstore_ps(r1 + 8, mb, t3);
    }
}

/* The input gradient gx (H, W) of one plane from its outputs' gradients g (OH, OW) and the
 * forward's indices; the row and column no window covers (odd H, W) are zeroed */
static __attribute__((target("avx2"))) void
fg_pp_back_plane(const float *g, const int64_t *idx, float *gx, ptrdiff_t H, ptrdiff_t W,
                 ptrdiff_t OH, ptrdiff_t OW) {
    for (ptrdiff_t oh = 0; oh < OH; oh++) {
        float *r0 = gx + 2 * oh * W;
        int32_t base = (int32_t)(2 * oh * W);
        ptrdiff_t ow = 0;
        for (; ow + 8 <= OW; ow += 8)
            fg_pp_back_block(g + oh * OW + ow, idx + oh * OW + ow, r0 + 2 * ow, W,
                             base + 2 * (int32_t)ow, 8);
        if (ow < OW)
            fg_pp_back_block(g + oh * OW + ow, idx + oh * OW + ow, r0 + 2 * ow, W,
                             base + 2 * (int32_t)ow, (int)(OW - ow));
        for (ptrdiff_t j = 2 * OW; j < W; j++) { r0[j] = 0; r0[W + j] = 0; }
    }
    for (ptrdiff_t i = 2 * OH * W; i < H * W; i++) gx[i] = 0;
}

#else

static int fg_pp_ok(void) { return 0; }
static void fg_pp_back_plane(const float *g, const int64_t *idx, float *gx, ptrdiff_t H,
                             ptrdiff_t W, ptrdiff_t OH, ptrdiff_t OW) {}
static void fg_pp_plane(const float *x, ptrdiff_t W, float *y, int64_t *idx, ptrdiff_t OH,
                        ptrdiff_t OW) {}

#endif
#endif
