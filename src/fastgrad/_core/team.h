/* fastgrad's thread team: a parallel loop whose caller never waits for a partner to arrive.
 *
 * Note [A team that does not wait for its partners]
 * A parallel loop on OpenMP's team (static schedule, passive waiting) wakes the sleeping partner
 * and then waits at the end for the partner's share: every loop pays the partner's wake-up
 * (measured here ~15 us: a 131,072-element add took 28.6 us on two threads against 25.8 on one),
 * and on a busy machine a partner without a core holds the caller for a time slice. Here the n
 * items of a loop are claimed one at a time from one shared counter by whoever is running: the
 * caller starts claiming at once, a partner joins when it wakes, and the caller waits only for
 * items a partner has already claimed and is computing. A partner that wakes late finds fewer
 * items or none; a partner without a core costs nothing. An idle partner sleeps on a condition
 * variable, after looking for the next loop for spin_ns (kernels.team_spin, FASTGRAD_SPIN_US;
 * default 0). Measured here: back-to-back adds of 131,072 floats take 21.5 us with a 50 us spin
 * against 29.6 us without (one thread 30.5, OpenMP's team 35.5), but whole training steps gained
 * nothing measurable from spinning, and beside one busy process W13's step took 23.3 ms with a
 * 50 us spin against 18.5 ms without.
 *
 * Which thread runs an item is left to timing, so an item's result must not depend on it: every
 * caller computes each item the same way on any thread, and a per-thread scratch is indexed by
 * the slot passed to the item (0 for the caller, 1..threads-1 for partners).
 *
 * One loop runs at a time. A loop started while another runs (a second Python thread, or an
 * item that starts a loop of its own) runs all its items on its calling thread, as does a loop
 * of one item or on one thread. In a forked child the partners do not exist; the callers there
 * ask for one thread (Note [Threads after fork] in kernels.pyx).
 *
 * How a stale partner is kept out: the shared counter holds the loop's generation in its high 32
 * bits and the next item in its low 32. A partner reads the loop's description (kept in one of
 * two slots, by generation), then claims an item with a compare-and-swap of the whole counter,
 * which fails once a newer loop has started; a slot is reused only two loops later, after every
 * item of the loop between has finished, so a description read before a successful claim was
 * the claimed loop's. */
#ifndef FASTGRAD_TEAM_H
#define FASTGRAD_TEAM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FG_TEAM_PAUSE() _mm_pause()
#else
#define FG_TEAM_PAUSE() ((void)0)
#endif

typedef void (*fg_team_fn)(void *ctx, ptrdiff_t item, int slot);

#define FG_TEAM_MAX 64          /* partners at most (threads - 1) */

typedef struct {
    fg_team_fn fn;
    void *ctx;
    int64_t n;
    int slots;                  /* partners with slot < slots take part */
    int64_t done;               /* items finished (atomic) */
} fg_team_loop;

static struct {
    pthread_mutex_t run;        /* held by the loop's caller */
    pthread_mutex_t lock;       /* sleeping and waking */
    pthread_cond_t wake;        /* partners sleep here */
    pthread_cond_t finished;    /* the caller sleeps here */
    uint64_t claim;             /* generation << 32 | next item (atomic) */
    uint32_t gen;               /* the caller's count of loops (under run) */
    int partners;               /* started */
    int sleepers;               /* partners asleep or about to be (atomic) */
    int caller_waiting;         /* atomic */
    int64_t spin_ns;            /* how long an idle partner looks for the next loop */
    int64_t partner_items;      /* items partners ran: for tests (atomic) */
    fg_team_loop loops[2];
} fg_team = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
             PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0, 0, 0};

static __thread int fg_team_inside = 0;     /* running an item, or a partner */

static inline int64_t fg_team_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Claim and run items of generation g until none is left or a newer loop started. */
static void fg_team_serve(uint32_t g, int slot) {
    for (;;) {
        uint64_t c = __atomic_load_n(&fg_team.claim, __ATOMIC_ACQUIRE);
        if ((uint32_t)(c >> 32) != g)
            return;
        fg_team_loop *l = &fg_team.loops[g & 1];
        int64_t n = __atomic_load_n(&l->n, __ATOMIC_RELAXED);
        fg_team_fn fn = __atomic_load_n(&l->fn, __ATOMIC_RELAXED);
        void *ctx = __atomic_load_n(&l->ctx, __ATOMIC_RELAXED);
        int64_t item = (int64_t)(uint32_t)c;
        if (item >= n || slot >= __atomic_load_n(&l->slots, __ATOMIC_RELAXED))
            return;
        if (!__atomic_compare_exchange_n(&fg_team.claim, &c, c + 1, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE))
            continue;
        fn(ctx, (ptrdiff_t)item, slot);
        if (slot)
            __atomic_add_fetch(&fg_team.partner_items, 1, __ATOMIC_RELAXED);
        if (__atomic_add_fetch(&l->done, 1, __ATOMIC_SEQ_CST) == n &&
                __atomic_load_n(&fg_team.caller_waiting, __ATOMIC_SEQ_CST)) {
            pthread_mutex_lock(&fg_team.lock);
            pthread_cond_broadcast(&fg_team.finished);
            pthread_mutex_unlock(&fg_team.lock);
        }
    }
}

static inline uint32_t fg_team_gen(void) {
    return (uint32_t)(__atomic_load_n(&fg_team.claim, __ATOMIC_SEQ_CST) >> 32);
}

static void *fg_team_partner(void *arg) {
    int slot = (int)(intptr_t)arg;
    uint32_t seen = fg_team_gen();
    fg_team_inside = 1;
    for (;;) {
        uint32_t g = fg_team_gen();
        if (g != seen) {
            fg_team_serve(g, slot);
            seen = g;
            continue;
        }
        int64_t until = fg_team_now() + __atomic_load_n(&fg_team.spin_ns, __ATOMIC_RELAXED);
        int changed = 0;
        while (!changed && fg_team_now() < until) {
            for (int k = 0; k < 32 && !(changed = fg_team_gen() != seen); k++)
                FG_TEAM_PAUSE();
        }
        if (changed)
            continue;
        pthread_mutex_lock(&fg_team.lock);
        __atomic_add_fetch(&fg_team.sleepers, 1, __ATOMIC_SEQ_CST);
        while (fg_team_gen() == seen)
            pthread_cond_wait(&fg_team.wake, &fg_team.lock);
        __atomic_sub_fetch(&fg_team.sleepers, 1, __ATOMIC_SEQ_CST);
        pthread_mutex_unlock(&fg_team.lock);
    }
    return NULL;
}

/* Start partners up to `want`; returns how many there are. */
static int fg_team_grow(int want) {
    if (want > FG_TEAM_MAX)
        want = FG_TEAM_MAX;
    while (fg_team.partners < want) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int err = pthread_create(&t, &attr, fg_team_partner,
                                 (void *)(intptr_t)(fg_team.partners + 1));
        pthread_attr_destroy(&attr);
        if (err)
            break;
        fg_team.partners++;
    }
    return fg_team.partners;
}

/* fn(ctx, i, slot) for i in [0, n), on up to `threads` threads (the caller's slot is 0). */
static void fg_team_run(fg_team_fn fn, void *ctx, ptrdiff_t n, int threads) {
    ptrdiff_t i;
    if (n <= 0)
        return;
    if (threads <= 1 || n == 1 || n > 0x7fffffff || fg_team_inside ||
            pthread_mutex_trylock(&fg_team.run) != 0) {
        for (i = 0; i < n; i++)
            fn(ctx, i, 0);
        return;
    }
    if (fg_team_grow(threads - 1) == 0) {
        pthread_mutex_unlock(&fg_team.run);
        for (i = 0; i < n; i++)
            fn(ctx, i, 0);
        return;
    }
    uint32_t g = ++fg_team.gen;
    fg_team_loop *l = &fg_team.loops[g & 1];
    __atomic_store_n(&l->fn, fn, __ATOMIC_RELAXED);
    __atomic_store_n(&l->ctx, ctx, __ATOMIC_RELAXED);
    __atomic_store_n(&l->n, (int64_t)n, __ATOMIC_RELAXED);
    __atomic_store_n(&l->slots, threads, __ATOMIC_RELAXED);
    __atomic_store_n(&l->done, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&fg_team.claim, (uint64_t)g << 32, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&fg_team.sleepers, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&fg_team.lock);
        pthread_cond_broadcast(&fg_team.wake);
        pthread_mutex_unlock(&fg_team.lock);
    }
    fg_team_inside = 1;
    fg_team_serve(g, 0);
    fg_team_inside = 0;
    /* only items a partner claimed are left: wait for them, briefly spinning first */
    if (__atomic_load_n(&l->done, __ATOMIC_ACQUIRE) < n) {
        int64_t until = fg_team_now() + __atomic_load_n(&fg_team.spin_ns, __ATOMIC_RELAXED);
        do {
            for (int k = 0; k < 32; k++)
                FG_TEAM_PAUSE();
        } while (__atomic_load_n(&l->done, __ATOMIC_ACQUIRE) < n && fg_team_now() < until);
    }
    if (__atomic_load_n(&l->done, __ATOMIC_ACQUIRE) < n) {
        pthread_mutex_lock(&fg_team.lock);
        __atomic_store_n(&fg_team.caller_waiting, 1, __ATOMIC_SEQ_CST);
        while (__atomic_load_n(&l->done, __ATOMIC_SEQ_CST) < n)
            pthread_cond_wait(&fg_team.finished, &fg_team.lock);
        __atomic_store_n(&fg_team.caller_waiting, 0, __ATOMIC_SEQ_CST);
        pthread_mutex_unlock(&fg_team.lock);
    }
    pthread_mutex_unlock(&fg_team.run);
}

#endif
