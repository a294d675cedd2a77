/* Matrix products of float32 for the NumPy backend (host_gemm.py), on x86-64 CPUs
   with AVX-512F: the first layer's two products (128 x 784 by 784 x 30 and its
   weight gradient) in about 55% of OpenBLAS's time (docs/benchmarks.md).

   Each element's sum has one order, fixed by the shapes alone, whatever the
   blocking, the row blocks of host_threads.py or the addresses:
   - gemm_dots, C = A B^T (A's and B's rows contiguous): C[i][j] = A_i . B_j in
     16 lanes, lane l summing the terms k = l (mod 16) in order by fused
     multiply-adds, then the lanes added as a tree (l + 8, + 4, + 2, + 1);
   - gemm_axpys, C = S B (B's rows contiguous), S[p][r] = A[r sr + p sp]:
     C[p][n] = sum over r, in order, by fused multiply-adds. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

/* AVX-512F; optimize("O3"): gcc's -O2 would keep the blocks' accumulators in memory */
#define AVX512 __attribute__((target("avx512f,avx512dq,fma"), optimize("O3")))
#define DOT_ROWS 4 /* a block of gemm_dots: rows of A by rows of B, 24 accumulators */
#define DOT_COLUMNS 6
#define AXPY_ROWS 6 /* a block of gemm_axpys: rows of C by 16-column vectors, 24 */
#define AXPY_VECTORS 4

int gemm_ready(void)
{
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
}

AVX512 static inline float lanes_sum(__m512 v)
{
  __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
}

/* p[0..16), the lanes outside ``in`` 0 (a plain load where all are in: a masked
   one, even of all lanes, made the products 1.8x slower) */
AVX512 static inline __attribute__((always_inline)) __m512 load16(const float *p, __mmask16 in)
{
  return in == 0xFFFF ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(in, p);
}

/* acc[r][c] += A_r[e..e+16) B_c[e..e+16), lane by lane, the terms outside ``in`` 0;
   and, unless ``ahead`` is 0, the same columns of its rows asked of L1 */
AVX512 static inline __attribute__((always_inline)) void
dot_terms(__m512 acc[DOT_ROWS][DOT_COLUMNS], const float *const *a, const float *const *b,
          long e, __mmask16 in, const float *const *ahead)
{
  __m512 av[DOT_ROWS];
  for (int r = 0; r < DOT_ROWS; r++) {
    av[r] = load16(a[r] + e, in);
    if (ahead)
      _mm_prefetch((const char *)(ahead[r] + e), _MM_HINT_T0);
  }
  for (int c = 0; c < DOT_COLUMNS; c++) {
    const __m512 bv = load16(b[c] + e, in);
    for (int r = 0; r < DOT_ROWS; r++)
      acc[r][c] = _mm512_fmadd_ps(av[r], bv, acc[r][c]);
  }
}

/* C (m x n, rows ldc apart) = A (m x k, lda) B^T (B: n x k, ldb). A block past
   the last row reads the last row again and stores nothing of it. */
AVX512 void gemm_dots(const float *A, const float *B, float *C, long m, long n, long k,
                      long lda, long ldb, long ldc)
{
  for (long i = 0; i < m; i += DOT_ROWS) {
    const float *a[DOT_ROWS], *next[DOT_ROWS];
    for (int r = 0; r < DOT_ROWS; r++) {
      a[r] = A + (i + r < m ? i + r : m - 1) * lda;
      next[r] = A + (i + DOT_ROWS + r < m ? i + DOT_ROWS + r : m - 1) * lda;
    }
    for (long j = 0; j < n; j += DOT_COLUMNS) {
      const float *b[DOT_COLUMNS];
      for (int c = 0; c < DOT_COLUMNS; c++)
        b[c] = B + (j + c < n ? j + c : n - 1) * ldb;
      __m512 acc[DOT_ROWS][DOT_COLUMNS];
      for (int r = 0; r < DOT_ROWS; r++)
        for (int c = 0; c < DOT_COLUMNS; c++)
          acc[r][c] = _mm512_setzero_ps();
      long e = 0;
      if (j == 0) /* the next block's rows, from memory while these compute */
        for (; e + 16 <= k; e += 16)
          dot_terms(acc, a, b, e, 0xFFFF, next);
      else
        for (; e + 16 <= k; e += 16)
          dot_terms(acc, a, b, e, 0xFFFF, 0);
      if (e < k)
        dot_terms(acc, a, b, e, (__mmask16)((1u << (k - e)) - 1), 0);
      for (int r = 0; r < DOT_ROWS && i + r < m; r++)
        for (int c = 0; c < DOT_COLUMNS && j + c < n; c++)
          C[(i + r) * ldc + j + c] = lanes_sum(acc[r][c]);
    }
  }
}

/* C (p x n, ldc) = S B (B: rows x n, ldb), S[q][r] = A[r sr + q sp]: A^T B for
   sr = lda, sp = 1; A B for sr = 1, sp = lda. Columns outermost, so a block's
   rows of B are read from L1 by every block of C's rows; its 16-column vectors
   start where B's first row is 64-byte aligned (the first one before column 0,
   its lanes there left out), which changes no sum. */
AVX512 void gemm_axpys(const float *A, const float *B, float *C, long p, long n, long rows,
                       long sr, long sp, long ldb, long ldc)
{
  const long aligned = (long)((64 - (uintptr_t)B % 64) % 64 / sizeof(float)) % 16;
  for (long col = aligned ? aligned - 16 : 0; col < n; col += 16 * AXPY_VECTORS) {
    __mmask16 in[AXPY_VECTORS];
    for (int v = 0; v < AXPY_VECTORS; v++) {
      const long start = col + 16 * v, lo = start < 0 ? -start : 0;
      const long hi = n - start < 16 ? n - start : 16;
      in[v] = hi > lo ? (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1)) : 0;
    }
    for (long q0 = 0; q0 < p; q0 += AXPY_ROWS) {
      long at[AXPY_ROWS];
      for (int q = 0; q < AXPY_ROWS; q++)
        at[q] = (q0 + q < p ? q0 + q : p - 1) * sp;
      __m512 acc[AXPY_ROWS][AXPY_VECTORS];
      for (int q = 0; q < AXPY_ROWS; q++)
        for (int v = 0; v < AXPY_VECTORS; v++)
          acc[q][v] = _mm512_setzero_ps();
      for (long r = 0; r < rows; r++) {
        const float *br = B + r * ldb + col, *ar = A + r * sr;
        __m512 bv[AXPY_VECTORS];
        for (int v = 0; v < AXPY_VECTORS; v++)
          bv[v] = load16(br + 16 * v, in[v]);
        for (int q = 0; q < AXPY_ROWS; q++) {
          const __m512 s = _mm512_set1_ps(ar[at[q]]);
          for (int v = 0; v < AXPY_VECTORS; v++)
            acc[q][v] = _mm512_fmadd_ps(s, bv[v], acc[q][v]);
        }
      }
      for (int q = 0; q < AXPY_ROWS && q0 + q < p; q++)
        for (int v = 0; v < AXPY_VECTORS; v++)
          _mm512_mask_storeu_ps(C + (q0 + q) * ldc + col + 16 * v, in[v], acc[q][v]);
    }
  }
}
#else
int gemm_ready(void) { return 0; }
void gemm_dots(const float *A, const float *B, float *C, long m, long n, long k, long lda,
               long ldb, long ldc) {}
void gemm_axpys(const float *A, const float *B, float *C, long p, long n, long rows, long sr,
                long sp, long ldb, long ldc) {}
#endif
