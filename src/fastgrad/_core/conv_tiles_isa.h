/* The loops of conv_tiles.h for one instruction set, included once per set with its vector
 * macros defined (FG_T names a function for the set, FG_V is its vector of FG_VL floats; Note
 * [Convolution tiles]); the macros are undefined at the end. */
/* Included with FG_T undefined (conv_kernels.pyx names this file so that the build sees it as a
 * dependency), it declares nothing. */
#ifdef FG_T

#define FG_CT_I static inline __attribute__((always_inline, target(FG_CT_TARGET)))
#define FG_CT_S static __attribute__((target(FG_CT_TARGET)))

/* mr rows of o (a constant after inlining) x 2 vectors of columns from l */
FG_CT_I void FG_T(fg_ct_fwd_tile)(const float *xp, const ptrdiff_t *off, ptrdiff_t K,
                                  const float *w, float *yw, ptrdiff_t LwR, ptrdiff_t l,
                                  const int mr) {
    FG_V a0[6], a1[6];
    for (int r = 0; r < mr; r++) { a0[r] = FG_VZ(); a1[r] = FG_VZ(); }
    for (ptrdiff_t k = 0; k < K; k++) {
        const float *src = xp + off[k] + l;
        FG_V x0 = FG_VLD(src), x1 = FG_VLD(src + FG_VL);
        for (int r = 0; r < mr; r++) {
            FG_V wv = FG_VBC(w + r * K + k);
            a0[r] = FG_VFMA(wv, x0, a0[r]);
            a1[r] = FG_VFMA(wv, x1, a1[r]);
        }
    }
    for (int r = 0; r < mr; r++) {
        FG_VST(yw + r * LwR + l, a0[r]);
        FG_VST(yw + r * LwR + l + FG_VL, a1[r]);
    }
}

/* yw (O, LwR) = w (O, K) applied to the shifted rows of xp */
FG_CT_S void FG_T(fg_ct_fwd)(const float *xp, const ptrdiff_t *off, ptrdiff_t K,
                             const float *w, ptrdiff_t O, float *yw, ptrdiff_t LwR) {
    for (ptrdiff_t o = 0; o < O; o += 6) {
        const float *wo = w + o * K;
        float *yo = yw + o * LwR;
        for (ptrdiff_t l = 0; l < LwR; l += 2 * FG_VL) {
#define FG_CT_C(MR) FG_T(fg_ct_fwd_tile)(xp, off, K, wo, yo, LwR, l, MR);
            FG_CT_SW6(O - o, FG_CT_C)
#undef FG_CT_C
        }
    }
}

/* mo rows of o x nk rows of k, summed over all LwR columns, added into dw (O, K) */
FG_CT_I void FG_T(fg_ct_wgrad_tile)(const float *xp, const ptrdiff_t *off, ptrdiff_t K,
                                    const float *gw, ptrdiff_t LwR, float *dw, const int mo,
                                    const int nk) {
    FG_V a[6][2];
    for (int r = 0; r < mo; r++)
        for (int j = 0; j < nk; j++) a[r][j] = FG_VZ();
    for (ptrdiff_t l = 0; l < LwR; l += FG_VL) {
        FG_V x[2];
        for (int j = 0; j < nk; j++) x[j] = FG_VLD(xp + off[j] + l);
        for (int r = 0; r < mo; r++) {
            FG_V g = FG_VLD(gw + r * LwR + l);
            for (int j = 0; j < nk; j++) a[r][j] = FG_VFMA(g, x[j], a[r][j]);
        }
    }
    for (int r = 0; r < mo; r++)
        for (int j = 0; j < nk; j++) dw[r * K + j] += FG_VHSUM(a[r][j]);
}

/* dw (O, K) += gw (O, LwR) @ the shifted rows of xp, transposed; tiles of 6 o x 2 k (8 loads
 * for 12 FMAs) */
FG_CT_S void FG_T(fg_ct_wgrad)(const float *xp, const ptrdiff_t *off, ptrdiff_t K,
                               const float *gw, ptrdiff_t O, ptrdiff_t LwR, float *dw) {
    for (ptrdiff_t o = 0; o < O; o += 6) {
        const float *go = gw + o * LwR;
        for (ptrdiff_t k = 0; k < K; k += 2) {
#define FG_CT_C(MO) \
            if (K - k >= 2) FG_T(fg_ct_wgrad_tile)(xp, off + k, K, go, LwR, dw + o * K + k, MO, 2); \
            else FG_T(fg_ct_wgrad_tile)(xp, off + k, K, go, LwR, dw + o * K + k, MO, 1);
            FG_CT_SW6(O - o, FG_CT_C)
#undef FG_CT_C
        }
    }
}

/* Channel tiles: nv vectors of output channels x mr output positions, so only the OH*OW real
 * positions are computed (the wide rows compute LwR, e.g. 128 columns for 100 positions at
 * LeNet's second layer). O is a multiple of FG_VL; wt: the weight transposed, (K, O); gt: the
 * output gradient transposed, (P, O). The forward's positions are consecutive in one output row,
 * so one pointer addresses them all (a pointer per position spills on x86-64). */
FG_CT_I void FG_T(fg_ct_fwd_ch_tile)(const float *xp, const ptrdiff_t *off, ptrdiff_t K,
                                     const float *wt, ptrdiff_t O, ptrdiff_t P,
                                     const float *bias, float *y, const int mr, const int nv) {
    FG_V a[FG_CH_MR][FG_CH_NV];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++) a[r][v] = FG_VZ();
    for (ptrdiff_t k = 0; k < K; k++) {
        FG_V w[FG_CH_NV];
        for (int v = 0; v < nv; v++) w[v] = FG_VLD(wt + k * O + FG_VL * v);
        const float *src = xp + off[k];
        for (int r = 0; r < mr; r++) {
            FG_V xv = FG_VBC(src + r);
            for (int v = 0; v < nv; v++) a[r][v] = FG_VFMA(xv, w[v], a[r][v]);
        }
    }
    float t[FG_VL * FG_CH_NV];
    for (int r = 0; r < mr; r++) {
        for (int v = 0; v < nv; v++) FG_VST(t + FG_VL * v, a[r][v]);
        for (int i = 0; i < FG_VL * nv; i++) y[i * P + r] = t[i] + (bias ? bias[i] : 0.0f);
    }
}

/* y (O, OH*OW) = wt^T applied to the shifted rows of xp (rows Wp apart) + bias (NULL: none) */
FG_CT_S void FG_T(fg_ct_fwd_ch)(const float *xp, const ptrdiff_t *off, ptrdiff_t K,
                                const float *wt, ptrdiff_t O, ptrdiff_t OH, ptrdiff_t OW,
                                ptrdiff_t Wp, const float *bias, float *y) {
    ptrdiff_t P = OH * OW;
    for (ptrdiff_t o = 0; o < O; o += FG_CH_NV * FG_VL) {
        const float *wo = wt + o;
        const float *bo = bias ? bias + o : NULL;
        int nv = O - o >= FG_CH_NV * FG_VL ? FG_CH_NV : 1;
        for (ptrdiff_t oh = 0; oh < OH; oh++) {
            float *yo = y + o * P + oh * OW;
            const float *xr = xp + oh * Wp;
            for (ptrdiff_t ow = 0; ow < OW; ow += FG_CH_MR) {
#define FG_CT_C(MR) \
                if (nv == FG_CH_NV) FG_T(fg_ct_fwd_ch_tile)(xr + ow, off, K, wo, O, P, bo, yo + ow, MR, FG_CH_NV); \
                else FG_T(fg_ct_fwd_ch_tile)(xr + ow, off, K, wo, O, P, bo, yo + ow, MR, 1);
                FG_CH_SW(OW - ow, FG_CT_C)
#undef FG_CT_C
            }
        }
    }
}

FG_CT_I void FG_T(fg_ct_wgrad_ch_tile)(const float *xp, const ptrdiff_t *off, ptrdiff_t K,
                                       const float *gt, ptrdiff_t O, const ptrdiff_t *pos,
                                       ptrdiff_t P, float *dw, const int nk, const int nv) {
    FG_V a[FG_CH_MR][FG_CH_NV];
    for (int j = 0; j < nk; j++)
        for (int v = 0; v < nv; v++) a[j][v] = FG_VZ();
    for (ptrdiff_t p = 0; p < P; p++) {
        FG_V g[FG_CH_NV];
        for (int v = 0; v < nv; v++) g[v] = FG_VLD(gt + p * O + FG_VL * v);
        const float *b = xp + pos[p];
        for (int j = 0; j < nk; j++) {
            FG_V xv = FG_VBC(b + off[j]);
            for (int v = 0; v < nv; v++) a[j][v] = FG_VFMA(xv, g[v], a[j][v]);
        }
    }
    float t[FG_VL * FG_CH_NV];
    for (int j = 0; j < nk; j++) {
        for (int v = 0; v < nv; v++) FG_VST(t + FG_VL * v, a[j][v]);
        for (int i = 0; i < FG_VL * nv; i++) dw[i * K + j] += t[i];
    }
}

/* dw (O, K) += gt^T (O, P) @ the shifted rows of xp at the positions pos, transposed */
FG_CT_S void FG_T(fg_ct_wgrad_ch)(const float *xp, const ptrdiff_t *off, ptrdiff_t K,
                                  const float *gt, ptrdiff_t O, const ptrdiff_t *pos,
                                  ptrdiff_t P, float *dw) {
    for (ptrdiff_t o = 0; o < O; o += FG_CH_NV * FG_VL) {
        const float *go = gt + o;
        int nv = O - o >= FG_CH_NV * FG_VL ? FG_CH_NV : 1;
        for (ptrdiff_t k = 0; k < K; k += 6) {
#define FG_CT_C(NK) \
            if (nv == FG_CH_NV) FG_T(fg_ct_wgrad_ch_tile)(xp, off + k, K, go, O, pos, P, dw + o * K + k, NK, FG_CH_NV); \
            else FG_T(fg_ct_wgrad_ch_tile)(xp, off + k, K, go, O, pos, P, dw + o * K + k, NK, 1);
            FG_CT_SW6(K - k, FG_CT_C)
#undef FG_CT_C
        }
    }
}

/* dst (C, plane) = the rows of gc (K, Lw) summed back onto the plane at their offsets (col2im of
 * the wide column matrix), gathered a vector of dst at a time so each element is written once:
 * adding row after row into the plane (rows one element apart) stalls on store-to-load
 * forwarding. The sum runs over rows in order, as that loop did. dst: (VL - 1) writable
 * elements past C*plane. */
FG_CT_S void FG_T(fg_ct_unshift)(const float *gc, ptrdiff_t Lw, const ptrdiff_t *off,
                                 ptrdiff_t K, ptrdiff_t C, ptrdiff_t plane, float *dst) {
    ptrdiff_t kk = K / C;
    for (ptrdiff_t c = 0; c < C; c++) {
        const ptrdiff_t *oc = off + c * kk;
        const float *gr = gc + c * kk * Lw;
        float *d = dst + c * plane;
        for (ptrdiff_t q = 0; q < plane; q += FG_VL) {
            FG_V acc = FG_VZ();
            for (ptrdiff_t j = 0; j < kk; j++) {
                ptrdiff_t m = q - (oc[j] - c * plane);
                if (m >= Lw || m + FG_VL <= 0)
                    continue;
                if (m >= 0 && m + FG_VL <= Lw)
                    acc = FG_VADD(acc, FG_VLD(gr + j * Lw + m));
                else
                    acc = FG_VADD(acc, FG_VLDM(gr + j * Lw + m, m < 0 ? (int)-m : 0,
                                               m + FG_VL > Lw ? (int)(Lw - m) : FG_VL));
            }
            FG_VST(d + q, acc);
        }
    }
}

#undef FG_CT_I
#undef FG_CT_S
#undef FG_CT_TARGET
#undef FG_T
#undef FG_V
#undef FG_VL
#undef FG_VZ
#undef FG_VLD
#undef FG_VST
#undef FG_VBC
#undef FG_VFMA
#undef FG_VADD
#undef FG_VLDM
#undef FG_VHSUM
#undef FG_CH_MR
#undef FG_CH_NV
#undef FG_CH_SW

#endif
