/* The deep model's elementwise work as C, one call a stage (benchmarks/compiled_step.py).

   Row-major float32 arrays of n rows and k columns. Dropout draws are
   gpunet's SplitMix64 uniforms: the top 24 bits of mix(key + c * GAMMA) times
   2^-24, counter c = first + element index, the constants GAMMA, MIX1 and MIX2
   gpunet/backend/splitmix.py's (given as -D flags by compiled_step.py).
   Built with -DNO_ACTIVATION, the activation is the identity: the floor of
   any elementwise code for this step. */
#include <math.h>
#include <stdint.h>

#ifdef NO_ACTIVATION
#define ACTIVATE(v) (v)
#else
#define ACTIVATE(v) tanhf(v)
#endif

static inline float uniform(uint64_t key, uint64_t c)
{
  uint64_t z = key + c * GAMMA;
  z = (z ^ (z >> 30)) * MIX1;
  z = (z ^ (z >> 27)) * MIX2;
  return (float)(z >> 40) * (1.0f / 16777216.0f);
}

/* z <- tanh((z + b) mask), mask[e] = 1 where draw e >= p, else 0. */
void dense_forward(float *z, const float *b, float *mask, long n, long k,
                   uint64_t key, uint64_t first, float p)
{
  for (long i = 0; i < n; ++i)
    for (long j = 0; j < k; ++j) {
      const long e = i * k + j;
      const float m = uniform(key, first + (uint64_t)e) >= p ? 1.0f : 0.0f;
      mask[e] = m;
      z[e] = ACTIVATE((z[e] + b[j]) * m);
    }
}

/* dz = (1 - y^2) gy mask, db = its column sums. */
void dense_backward(const float *y, const float *gy, const float *mask, float *dz, float *db,
                    long n, long k)
{
  for (long j = 0; j < k; ++j)
    db[j] = 0;
  for (long i = 0; i < n; ++i)
    for (long j = 0; j < k; ++j) {
      const long e = i * k + j;
      dz[e] = (1 - y[e] * y[e]) * gy[e] * mask[e];
      db[j] += dz[e];
    }
}

/* Logits z + b of rows with classes cls: each row's loss -log softmax_c and
   whether its largest logit is at c; grad = (softmax - onehot) scale; db its column sums. */
void softmax_cross_entropy(float *z, const float *b, const int64_t *cls, float *grad,
                           float *losses, uint8_t *hits, float *db, long n, long k, float scale)
{
  for (long j = 0; j < k; ++j)
    db[j] = 0;
  for (long i = 0; i < n; ++i) {
    float *row = z + i * k, *g = grad + i * k, top = -INFINITY, total = 0;
    long best = 0;
    for (long j = 0; j < k; ++j) {
      row[j] += b[j];
      if (row[j] > top) { top = row[j]; best = j; }
    }
    for (long j = 0; j < k; ++j) {
      g[j] = expf(row[j] - top);
      total += g[j];
    }
    losses[i] = logf(total) - (row[cls[i]] - top);
    hits[i] = best == cls[i];
    for (long j = 0; j < k; ++j) {
      g[j] = (g[j] / total - (j == cls[i])) * scale;
      db[j] += g[j];
    }
  }
}

/* The notebook's momentum over every parameter at once. */
void momentum_update(float *param, float *velocity, const float *grad, long n, float lr,
                     float momentum)
{
  for (long i = 0; i < n; ++i) {
    velocity[i] = momentum * velocity[i] + (1 - momentum) * grad[i];
    param[i] -= lr * velocity[i];
  }
}
