/* gpunet's eager operations without their transcendentals, as C, beside the
   graph step's stages (benchmarks/eager_c.py): a user's loop through the
   layers with the arithmetic the NumPy backend's operations do
   (gpunet/backend/base.py) in C, tanh, exp and log NumPy's, so the same
   numbers bit for bit. Built as gpunet/backend/host_step.c is, which it
   includes for its helpers and momentum_update. */
#include "host_step.c"

/* y = x mask, the mask (p, scale) of draws first, first + 1, ... of key. */
void dropout(const float *x, float *y, float *mask, long n, uint64_t key, uint64_t first,
             float p, float scale)
{
  for (long e = 0; e < n; ++e) {
    mask[e] = keep(key, first + (uint64_t)e, p, scale);
    y[e] = x[e] * mask[e];
  }
}

/* gx = (1 - y^2) gy. */
void tanh_grad(const float *y, const float *gy, float *gx, long n)
{
  for (long e = 0; e < n; ++e)
    gx[e] = (1.0f - y[e] * y[e]) * gy[e];
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

/* A row's loss -(0 + (shifted_class - log_total)) and the gradient
   (e / total - a) scale in place of e. */
void one_hot_losses(const float *shifted, float *e, const float *total, const float *log_total,
                    const float *a, const int64_t *classes, float *losses, long n, long k,
                    float scale)
{
  for (long i = 0; i < n; ++i) {
    losses[i] = -(0.0f + (shifted[i * k + classes[i]] - log_total[i]));
    gradient_row(e + i * k, total[i], a + i * k, k, scale);
  }
}
