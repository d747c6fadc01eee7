/* The library's thread pool: one per process, started on first use, with one worker per extra
 * thread asked for (never more than the online cores minus the caller). pool_run(n, k, fn,
 * ctx) runs fn(ctx, c, k) for every chunk c = 0..k−1 on up to n threads, the caller being one
 * of them, and returns when all chunks are done.
 *
 * Why not OpenBLAS's threads: a 2-thread OpenBLAS call hands each GEMM to its worker and back,
 * and splits skinny products (a 10-wide output) badly. Here the split is ours: every chunk is
 * a single-threaded GEMM or kernel on its own rows or columns of the output, so no two chunks
 * write the same element and no reduction is needed: results do not depend on n or on which
 * thread ran which chunk. While a pool_run is in progress OpenBLAS is held at one thread
 * (gemm.c), so the pool's threads and OpenBLAS's never add up to more than n.
 *
 * Chunks are claimed, not assigned: each thread takes the next unclaimed chunk until none is
 * left. On a shared machine a worker may be descheduled for a whole time slice (milliseconds);
 * with fixed halves the caller would wait that long at every step, with claiming it just
 * takes the worker's chunks itself. Claims are a compare-and-swap on one 64-bit word holding
 * (generation, chunks claimed), so a late worker can never claim a chunk of a later call.
 * Up to 32 chunks the word holds one bit per chunk and each thread first claims its own
 * chunk, the caller 0 and worker i chunk i: a run split into one chunk per thread then gives
 * the same rows or units to the same core from one call to the next, and what a core wrote
 * in one call is still in its cache for the next (bp_limit: the 784-256-10 MLP's products
 * alone at 2 threads, 89 % of the sgemm peak with each core's weight rows kept on that core,
 * 84 % with them moving). More chunks are claimed in order through a counter.
 *
 * One pool_run at a time: a second caller that finds the pool busy (another thread of the
 * program training its own model) runs its chunks itself, with the same results. After fork()
 * the child has no workers; the pool forgets them. */
#include "internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#define POOL_MAX 64
/* Polls before a worker goes to sleep: a few tens of µs, longer than the serial work between
 * two parallel sections of a step (a softmax, an optimizer update), short enough that an
 * idle pool leaves the cores to others. */
#define POOL_SPIN 20000

static struct {
    pthread_mutex_t run;      /* held by the caller of pool_run */
    pthread_mutex_t m;        /* with cv: sleeping and waking */
    pthread_cond_t cv;        /* workers wait here for a new generation */
    int workers;              /* started */
    _Atomic uint64_t state;   /* generation << 32 | next chunk to claim */
    _Atomic int chunks;       /* of the current generation */
    _Atomic int done;         /* chunks of the current generation finished */
    _Atomic int sleepers;     /* workers in (or about to enter) pthread_cond_wait */
    _Atomic int park;         /* set by pool_park: stop spinning, sleep now */
    pool_fn fn;
    void *ctx;
    uint32_t born[POOL_MAX];  /* worker i: the generation current when it was made */
} P = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0,
       0, 0, 0, 0, NULL, NULL, {0}};

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

#define POOL_BITS 32 /* runs of up to this many chunks claim by bits, home chunk first */
#define POOL_CLOSED 0xffffffffu /* the claimed part of a generation with nothing to claim */

/* The chunk to claim given the claimed part of the state word, or k when none is left. */
static int next_chunk(uint32_t claimed, int k, int home)
{
    if (k > POOL_BITS)
        return claimed < (uint32_t)k ? (int)claimed : k;
    if (home < k && !(claimed >> home & 1u))
        return home;
    uint32_t free = ~claimed & (k == POOL_BITS ? 0xffffffffu : (1u << k) - 1u);
    return free ? __builtin_ctz(free) : k;
}

/* Claim and run chunks of generation gen until none is left; home: the thread's own chunk. */
static void drain(uint32_t gen, int home)
{
    uint64_t s = atomic_load_explicit(&P.state, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(s >> 32) != gen)
            return;
        int k = atomic_load_explicit(&P.chunks, memory_order_acquire);
        int c = next_chunk((uint32_t)s, k, home);
        if (c >= k)
            return;
        uint64_t claim = k > POOL_BITS ? s + 1 : s | (uint64_t)1 << c;
        if (!atomic_compare_exchange_weak_explicit(&P.state, &s, claim, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue; /* s now holds the current word */
        /* Chunk c of gen is ours: the caller cannot start another generation, nor change fn
         * and ctx, before it is done. */
        P.fn(P.ctx, c, k);
        atomic_fetch_add_explicit(&P.done, 1, memory_order_release);
        s = atomic_load_explicit(&P.state, memory_order_acquire);
    }
}

static void *worker(void *arg)
{
    /* The generation current when the thread was made, not when it first runs: by then the
     * pool_run that made it may have begun, and that run's chunks are this worker's too. */
    int home = (int)(uintptr_t)arg;
    uint32_t seen = P.born[home];
    for (;;) {
        uint32_t g;
        int spins = 0;
        while ((g = (uint32_t)(atomic_load_explicit(&P.state, memory_order_acquire) >> 32)) ==
                   seen &&
               spins++ < POOL_SPIN && !atomic_load_explicit(&P.park, memory_order_relaxed))
            relax();
        if (g == seen) {
            pthread_mutex_lock(&P.m);
            atomic_fetch_add(&P.sleepers, 1);
            while ((g = (uint32_t)(atomic_load(&P.state) >> 32)) == seen)
                pthread_cond_wait(&P.cv, &P.m);
            atomic_fetch_sub(&P.sleepers, 1);
            pthread_mutex_unlock(&P.m);
        }
        drain(g, home);
        seen = g;
    }
    return NULL;
}

static void forget_workers(void)
{
    /* In a fork()ed child: the workers were not copied and the locks may be held by threads
     * that no longer exist. */
    pthread_mutex_t m0 = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c0 = PTHREAD_COND_INITIALIZER;
    P.run = m0, P.m = m0, P.cv = c0;
    P.workers = 0;
    atomic_store(&P.sleepers, 0);
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void install_atfork(void) { pthread_atfork(NULL, NULL, forget_workers); }

/* Start workers until there are want of them; fewer if a thread cannot be created. */
static void grow(int want)
{
    pthread_once(&atfork_once, install_atfork);
    while (P.workers < want) {
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        int home = P.workers + 1;
        P.born[home] = (uint32_t)(atomic_load(&P.state) >> 32);
        int ok = pthread_create(&th, &at, worker, (void *)(uintptr_t)home) == 0;
        pthread_attr_destroy(&at);
        if (!ok)
            break;
        P.workers++;
    }
}

void pool_run(int n, int chunks, pool_fn fn, void *ctx)
{
    if (chunks < 1)
        return;
    if (n > POOL_MAX)
        n = POOL_MAX;
    if (n <= 1 || chunks == 1 || pthread_mutex_trylock(&P.run) != 0) {
        for (int c = 0; c < chunks; c++)
            fn(ctx, c, chunks);
        return;
    }
    grow(n - 1);
    atomic_store_explicit(&P.park, 0, memory_order_relaxed);
    gemm_hold_single();
    /* First close the last run: a worker still in its drain may have read that run's word
     * (every chunk claimed) and be about to read the new chunk count; with the word changed to
     * a generation with nothing to claim, its compare-and-swap fails. The count is stored with
     * release after the close, so a worker that reads the new count sees the close too. */
    uint32_t gen = (uint32_t)(atomic_load(&P.state) >> 32) + 1;
    atomic_store(&P.state, (uint64_t)gen << 32 | POOL_CLOSED);
    P.fn = fn, P.ctx = ctx;
    atomic_store_explicit(&P.chunks, chunks, memory_order_release);
    atomic_store_explicit(&P.done, 0, memory_order_relaxed);
    gen++;
    atomic_store(&P.state, (uint64_t)gen << 32); /* seq_cst: before the read of sleepers */
    if (atomic_load(&P.sleepers)) {
        pthread_mutex_lock(&P.m);
        pthread_cond_broadcast(&P.cv);
        pthread_mutex_unlock(&P.m);
    }
    drain(gen, 0);
    /* Chunks still running on workers: poll, then yield the core (the worker we wait for may
     * be queued behind us on it). */
    int spins = 0;
    while (atomic_load_explicit(&P.done, memory_order_acquire) < chunks) {
        if (spins++ < POOL_SPIN)
            relax();
        else
            sched_yield();
    }
    pthread_mutex_unlock(&P.run);
}

void pool_park(void) { atomic_store_explicit(&P.park, 1, memory_order_relaxed); }

void pool_range(int total, int align, int t, int n, int *lo, int *hi)
{
    /* Equal shares rounded to multiples of align (the last takes the rest). */
    long per = ((long)total + n - 1) / n;
    if (align > 1)
        per = (per + align - 1) / align * align;
    long a = per * t, b = per * (t + 1);
    *lo = (int)(a < total ? a : total);
    *hi = (int)(b < total ? b : total);
}
