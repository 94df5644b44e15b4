/* The vector level a family of hand-tiled or per-instruction-set loops runs (conv_tiles.h,
 * panel_tiles.h, rnn_cell.h, norm_rows.h, softmax_rows.h), picked once from the CPU; x86-64
 * GCC/Clang only (the callers include it inside their own guard). */
#ifndef FASTGRAD_CPU_LEVEL_H
#define FASTGRAD_CPU_LEVEL_H

/* 2: AVX-512F (with AVX2+FMA), 1: AVX2+FMA, 0: neither */
static inline int fg_cpu_level(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        return 0;
    return __builtin_cpu_supports("avx512f") ? 2 : 1;
}

/* The instruction set of the loops built three times like vmath.h's (rnn_cell.h, norm_rows.h,
 * softmax_rows.h): 2 with AVX-512F, DQ and VL, 1 with AVX2+FMA, else 0; at most want */
static inline int fg_isa_level(int want) {
    int lvl = fg_cpu_level();
    if (lvl == 2 && !(__builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")))
        lvl = 1;
    return want < lvl ? want : lvl;
}

/* *state: a family's level, the CPU's on first use; force: -1 keep, else the highest level
 * allowed from now on (tests run every path the CPU has) */
static inline int fg_pick_level(int *state, int force) {
    if (*state < 0 || force >= 0) {
        int lvl = fg_cpu_level();
        *state = force >= 0 && force < lvl ? force : lvl;
    }
    return *state;
}

#endif
