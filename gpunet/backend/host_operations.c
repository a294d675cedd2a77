/* The NumPy backend's eager operations without their transcendentals
   (host_operations.py calls them between NumPy's exp and log): dropout with
   its draws, the softmax cross-entropy of one-hot targets, and, from
   host_step.c, which this includes for it and for its helpers, the
   momentum update. Each does what base.py's operation does, in its float32
   operations and their order, so the same numbers bit for bit. The matrix
   products of host_gemm.c, which it also includes, are the exception: their
   own order of sums, not OpenBLAS's. */
#include "host_step.c"
#include "host_gemm.c"

/* mask: the keep mask (p, scale) of draws first, first + 1, ... of key; y = x mask. */
void dropout(const float *x, float *y, float *mask, long n, uint64_t key, uint64_t first,
             float p, float scale)
{
  keep_mask(mask, n, key, first, p, scale);
  for (long e = 0; e < n; ++e)
    y[e] = x[e] * mask[e];
}

/* Whether every row of a is one-hot (a single 1, the rest 0); if so, each
   row's class into classes and shifted = z - its first largest logit (a NaN
   counting as largest), else nothing written. */
bool shifted_one_hot(const float *z, const float *a, float *shifted, int64_t *classes,
                     long n, long k)
{
  for (long i = 0; i < n; ++i) {
    long ones = 0, nonzero = 0;
    for (long j = 0; j < k; ++j) {
      nonzero += a[i * k + j] != 0.0f;
      ones += a[i * k + j] == 1.0f;
      if (a[i * k + j] == 1.0f)
        classes[i] = j;
    }
    if (ones != 1 || nonzero != 1)
      return false;
  }
  for (long i = 0; i < n; ++i) {
    const float *row = z + i * k;
    const float largest = row[first_largest(row, k)];
    for (long j = 0; j < k; ++j)
      shifted[i * k + j] = row[j] - largest;
  }
  return true;
}

/* A row's loss -(0 + (shifted_class - log_total)) (base.py's sum over the one
   nonzero target) and the gradient (e / total - a) scale in place of e. */
void one_hot_losses(const float *shifted, float *e, const float *total, const float *log_total,
                    const float *a, const int64_t *classes, float *losses, long n, long k,
                    float scale)
{
  for (long i = 0; i < n; ++i) {
    losses[i] = -(0.0f + (shifted[i * k + classes[i]] - log_total[i]));
    gradient_row(e + i * k, total[i], a + i * k, k, scale);
  }
}
