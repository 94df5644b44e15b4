/* The loops of panel_tiles.h for one instruction set, included once per set with its vector
 * macros defined (FG_T names a function for the set, FG_V is its vector of FG_VL floats, FG_MR
 * the rows of a tile; Note [Packed recurrent weights]); the macros are undefined at the end. */
/* Included with FG_T undefined (rnn_kernels.pyx names this file so that the build sees it as a
 * dependency), it declares nothing. */
#ifdef FG_T

/* mr rows (a constant after inlining) x the 2 * FG_VL columns of one panel (its rows ldp
 * apart), nc of them kept: c = (add ? c : 0) + a @ panel (bias not NULL, add 0: bias[:nc] +
 * a @ panel on every row), a's element (r, kk) at a[r * sa + kk * sk]; K in nseg segments
 * (seg: triples of a's first kk, the panel's first row and the count; Note [Rows of a row
 * block]) */
static inline __attribute__((always_inline, target(FG_RT_TARGET))) void
FG_T(fg_rt_tile)(const float *a, ptrdiff_t sa, ptrdiff_t sk, const float *panel, ptrdiff_t ldp,
                 ptrdiff_t nseg, const ptrdiff_t *seg, float *c, ptrdiff_t ldc, ptrdiff_t nc,
                 int add, const float *bias, const int mr) {
    FG_V c0[FG_MR], c1[FG_MR];
    for (int r = 0; r < mr; r++) { c0[r] = FG_VZ(); c1[r] = FG_VZ(); }
    for (ptrdiff_t q = 0; q < nseg; q++) {
        const float *aq = a + seg[3 * q] * sk, *pq = panel + seg[3 * q + 1] * ldp;
        for (ptrdiff_t kk = 0; kk < seg[3 * q + 2]; kk++) {
            FG_V b0 = FG_VLDU(pq + kk * ldp), b1 = FG_VLDU(pq + kk * ldp + FG_VL);
            for (int r = 0; r < mr; r++) {
                FG_V av = FG_VBC(aq + r * sa + kk * sk);
                c0[r] = FG_VFMA(av, b0, c0[r]);
                c1[r] = FG_VFMA(av, b1, c1[r]);
            }
        }
    }
    float t[2 * FG_VL];
    if (bias && nc == 2 * FG_VL) {
        FG_V bv0 = FG_VLDU(bias), bv1 = FG_VLDU(bias + FG_VL);
        for (int r = 0; r < mr; r++) {
            FG_VST(c + r * ldc, FG_VADD(bv0, c0[r]));
            FG_VST(c + r * ldc + FG_VL, FG_VADD(bv1, c1[r]));
        }
        return;
    }
    for (int r = 0; r < mr; r++) {
        float *cr = c + r * ldc;
        if (bias) {
            FG_VST(t, c0[r]);
            FG_VST(t + FG_VL, c1[r]);
            for (ptrdiff_t j = 0; j < nc; j++) cr[j] = bias[j] + t[j];
        } else if (nc == 2 * FG_VL && !add) {
            FG_VST(cr, c0[r]);
            FG_VST(cr + FG_VL, c1[r]);
        } else if (nc == 2 * FG_VL) {
            FG_VST(cr, FG_VADD(FG_VLDU(cr), c0[r]));
            FG_VST(cr + FG_VL, FG_VADD(FG_VLDU(cr + FG_VL), c1[r]));
        } else {
            FG_VST(t, c0[r]);
            FG_VST(t + FG_VL, c1[r]);
            if (add)
                for (ptrdiff_t j = 0; j < nc; j++) cr[j] += t[j];
            else
                memcpy(cr, t, nc * sizeof(float));
        }
    }
}

/* c (m, n) (+)= a @ b, b's panel of columns j at bp + j * pj, its rows ldp apart (packed: pj = k,
 * ldp = 2 * FG_VL; b read in place: pj = 1, ldp = its row stride); K in nseg segments as
 * fg_rt_tile's; bias (n,) or NULL as fg_rt_tile's */
static __attribute__((target(FG_RT_TARGET))) void
FG_T(fg_rt_mm)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t nseg, const ptrdiff_t *seg, const float *a,
               ptrdiff_t sa, ptrdiff_t sk, const float *bp, ptrdiff_t pj, ptrdiff_t ldp,
               float *c, ptrdiff_t ldc, int add, const float *bias) {
    for (ptrdiff_t j = 0; j < n; j += 2 * FG_VL) {
        const float *panel = bp + j * pj;
        ptrdiff_t nc = n - j < 2 * FG_VL ? n - j : 2 * FG_VL;
        for (ptrdiff_t i = 0; i < m; i += FG_MR) {
#define FG_RT_C(MR) FG_T(fg_rt_tile)(a + i * sa, sa, sk, panel, ldp, nseg, seg, c + i * ldc + j, \
                                     ldc, nc, add, bias ? bias + j : NULL, MR);
            FG_SW(m - i, FG_RT_C)
#undef FG_RT_C
        }
    }
}

#undef FG_RT_TARGET
#undef FG_T
#undef FG_V
#undef FG_VL
#undef FG_MR
#undef FG_SW
#undef FG_VZ
#undef FG_VLDU
#undef FG_VADD
#undef FG_VST
#undef FG_VBC
#undef FG_VFMA

#endif
