/* stream_bench.c: do the decode kernels keep up with memory at two threads, and does the
 * mapped model file read as fast as anonymous memory? (issue #12; docs/performance.md, early
 * run of 2026-12-07). Outside CI; run it alone on the machine (x86-64 with AVX-512 only).
 *   gcc -O3 -Icsrc -c csrc/scalar.c -o scalar.o
 *   gcc -O3 -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx512dq -mavx2 -mfma -mf16c \
 *       -Icsrc -c csrc/avx512.c -o avx512.o
 *   gcc -O2 -pthread -mavx512f -Icsrc csrc/test/stream_bench.c scalar.o avx512.o -lm -o sb
 *   ./sb plain     two threads, each a plain 64-byte-load sum over its own 2 GiB
 *   ./sb q4k       two threads, each gemm_q4k_q8k_avx512 over 704-row slices of its own 2 GiB
 *   ./sb shared    two threads, 704-row Q4_K slices of one 4 GiB buffer from one atomic counter
 *                  (lode's pool hands out items this way)
 *   ./sb file MODEL.gguf OFFSET [anon]
 *                  two threads, gemm_q6k_q8k_avx512 in 3,632-row (8 MiB) items over the
 *                  262,144 x 2,816 Q6_K matrix at byte OFFSET of the file (the Gemma 4 LM head;
 *                  OFFSET = the GGUF data offset + the tensor's offset), mapped as lode maps it
 *                  (MAP_SHARED, MADV_HUGEPAGE), or with `anon` from an anonymous 2 MiB-page copy.
 * Anonymous buffers are 2 MiB pages (MADV_HUGEPAGE) holding Q4_K blocks with small finite
 * scales. Prints GB/s of bytes read: plain/q4k/shared the best of 4 passes, file the best and
 * the mean of passes 2-10 (pass 1 maps the file in). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <immintrin.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "../common.h"
#include "../kernels.h"

#define N 2816
#define GIB ((size_t)1 << 30)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint8_t act[N / 256 * 292]; /* one Q8_K activation row */
static volatile long long sink;

enum mode { PLAIN, Q4K, SHARED, FILE_Q6K };
static enum mode mode;
static const uint8_t *base[2]; /* PLAIN, Q4K: each thread's buffer; SHARED, FILE_Q6K: [0] */
static size_t len, row_bytes, item_rows, n_items, n_rows;
static int passes;
static atomic_size_t next_item;
static pthread_barrier_t bar;

static uint8_t *anon(size_t n) {
    uint8_t *b = mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED) { perror("mmap"); exit(1); }
    madvise(b, n, MADV_HUGEPAGE);
    return b;
}

/* Q4_K blocks (144 bytes) of pseudo-random bits whose f16 scales d and dmin are 2^-15 */
static uint8_t *q4k_buffer(size_t n) {
    uint8_t *b = anon(n);
    for (size_t i = 0; i < n; i += 64) b[i] = (uint8_t)(i * 2654435761u >> 13);
    for (size_t i = 0; i + 144 <= n; i += 144) { b[i] = 0; b[i + 1] = 0x20; b[i + 2] = 0; b[i + 3] = 0x20; }
    return b;
}

static void one_item(const uint8_t *w, size_t rows, float *out) {
    if (mode == FILE_Q6K) gemm_q6k_q8k_avx512(N, w, row_bytes, rows, act, 0, 1, out, 0);
    else gemm_q4k_q8k_avx512(N, w, row_bytes, rows, act, 0, 1, out, 0);
}

static void *worker(void *arg) {
    const int t = (int)(size_t)arg;
    static __thread float out[8192];
    for (int p = 0; p < passes; ++p) {
        pthread_barrier_wait(&bar);
        if (mode == PLAIN) {
            __m512i a = _mm512_setzero_si512();
            for (size_t i = 0; i < len; i += 64) a = _mm512_add_epi64(a, _mm512_load_si512(base[t] + i));
            sink += _mm512_reduce_add_epi64(a);
        } else if (mode == Q4K) {
            for (size_t i = 0; i < n_items; ++i) one_item(base[t] + i * item_rows * row_bytes, item_rows, out);
        } else {
            for (;;) {
                const size_t i = atomic_fetch_add(&next_item, 1);
                if (i >= n_items) break;
                const size_t r0 = i * item_rows, rows = r0 + item_rows > n_rows ? n_rows - r0 : item_rows;
                one_item(base[0] + r0 * row_bytes, rows, out);
            }
        }
        pthread_barrier_wait(&bar);
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *m = argc > 1 ? argv[1] : "";
    static float x[N];
    for (int i = 0; i < N; ++i) x[i] = (float)((i * 37 % 101) - 50) * 0.01f;
    quantize_row_q8_k_scalar(N, x, act);
    size_t bytes; /* read per pass, both threads together */
    if (!strcmp(m, "plain") || !strcmp(m, "q4k")) {
        mode = m[0] == 'p' ? PLAIN : Q4K;
        row_bytes = N / 256 * 144, item_rows = 704, len = 2 * GIB;
        n_items = len / (item_rows * row_bytes);
        for (int t = 0; t < 2; ++t) base[t] = q4k_buffer(len);
        bytes = mode == PLAIN ? 2 * len : 2 * n_items * item_rows * row_bytes;
        passes = 4;
    } else if (!strcmp(m, "shared")) {
        mode = SHARED, row_bytes = N / 256 * 144, item_rows = 704;
        n_rows = 4 * GIB / row_bytes / item_rows * item_rows, n_items = n_rows / item_rows;
        base[0] = q4k_buffer(4 * GIB);
        bytes = n_rows * row_bytes, passes = 4;
    } else if (!strcmp(m, "file") && argc > 3) {
        mode = FILE_Q6K, row_bytes = N / 256 * 210, item_rows = 3632, n_rows = 262144;
        n_items = (n_rows + item_rows - 1) / item_rows, bytes = n_rows * row_bytes, passes = 10;
        const int fd = open(argv[2], O_RDONLY);
        struct stat st;
        const size_t off = strtoull(argv[3], 0, 10);
        if (fd < 0 || fstat(fd, &st) || off + bytes > (size_t)st.st_size) { fprintf(stderr, "bad file or offset\n"); return 1; }
        uint8_t *f = mmap(0, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (f == MAP_FAILED) { perror("mmap"); return 1; }
        madvise(f, st.st_size, MADV_HUGEPAGE);
        base[0] = f + off;
        if (argc > 4) {
            uint8_t *b = anon(bytes);
            memcpy(b, f + off, bytes);
            base[0] = b;
        }
    } else {
        fprintf(stderr, "usage: sb plain | q4k | shared | file MODEL.gguf OFFSET [anon]\n");
        return 2;
    }
    pthread_barrier_init(&bar, 0, 3);
    pthread_t th[2];
    for (int t = 0; t < 2; ++t) pthread_create(&th[t], 0, worker, (void *)(size_t)t);
    double best = 0, sum = 0;
    for (int p = 0; p < passes; ++p) {
        atomic_store(&next_item, 0);
        pthread_barrier_wait(&bar);
        const double t0 = now();
        pthread_barrier_wait(&bar);
        const double g = (double)bytes / (now() - t0) / 1e9;
        if (mode == FILE_Q6K && p == 0) continue;
        sum += g;
        if (g > best) best = g;
    }
    for (int t = 0; t < 2; ++t) pthread_join(th[t], 0);
    if (mode == FILE_Q6K) printf("%s: best %.1f, mean %.1f GB/s\n", argc > 4 ? "anonymous copy" : "mapped file", best, sum / (passes - 1));
    else printf("%s: best %.1f GB/s\n", m, best);
    return 0;
}
