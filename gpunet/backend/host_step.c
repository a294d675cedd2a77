/* A graph step's stages on the host, without their activations' forward
   formulas, exp and log (host_replay.py replays them between NumPy's).

   Each function does what its part of a NumPy backend operation does
   (planned_step.py, graph_step.py, base.py, activations.py) but for those: the
   same float32 operations in the same order, so the same numbers bit for bit
   (built with -ffp-contract=off: no fused multiply-adds). Row-major float32
   arrays of n rows and k columns; a graph step's uint64 state holds the step's
   first row at OFFSET, its first dropout counter at COUNTER and the key at
   KEY; GAMMA, MIX1, MIX2 are splitmix.py's; TANH, SIGMOID, RELU and LEAKY_RELU
   name the activations dense_backward knows. All given as -D flags (host_c.py). */
#include <stdbool.h>
#include <stdint.h>

/* db[j] = sum over rows of g[., j], row after row: NumPy's add.reduce(axis=0). */
static void column_sums(const float *g, float *db, long n, long k)
{
  for (long j = 0; j < k; ++j)
    db[j] = g[j];
  for (long i = 1; i < n; ++i)
    for (long j = 0; j < k; ++j)
      db[j] += g[i * k + j];
}

/* The keep mask of counter c of key: scale where its uniform draw (the top 24
   bits of SplitMix64's, times 2^-24) is >= p, else 0. */
static inline float keep(uint64_t key, uint64_t c, float p, float scale)
{
  uint64_t bits = key + c * GAMMA;
  bits = (bits ^ (bits >> 30)) * MIX1;
  bits = (bits ^ (bits >> 27)) * MIX2;
  return (float)(bits >> 40) * (1.0f / 16777216.0f) >= p ? scale : 0.0f;
}

/* mask[e] = keep(key, first + e, p, scale) for e < n. */
static void keep_mask(float *mask, long n, uint64_t key, uint64_t first, float p, float scale)
{
  for (long e = 0; e < n; ++e)
    mask[e] = keep(key, first + (uint64_t)e, p, scale);
}

/* The index of a row's first largest entry, a NaN counting as largest (argmax's). */
static long first_largest(const float *row, long k)
{
  long top = 0;
  for (long j = 1; j < k; ++j)
    if (row[top] == row[top] && !(row[j] <= row[top]))
      top = j;
  return top;
}

/* A row's gradient in place of its exponentials e: (e / total - a) scale. */
static void gradient_row(float *e, float total, const float *a, long k, float scale)
{
  for (long j = 0; j < k; ++j) {
    float g = e[j] / total;
    g -= a[j];
    if (scale != 1.0f)
      g *= scale;
    e[j] = g;
  }
}

/* z <- (z + b) mask, the mask (p, scale) of the draws of the state's key from
   its counter + skip; without a mask, z <- z + b. */
void dense_forward(float *z, const float *b, float *mask, long n, long k,
                   const uint64_t *state, uint64_t skip, float p, float scale)
{
  if (mask)
    keep_mask(mask, n * k, state[KEY], state[COUNTER] + skip, p, scale);
  for (long i = 0; i < n; ++i) {
    float *row = z + i * k;
    if (mask)  /* two loops: gcc vectorises each */
      for (long j = 0; j < k; ++j)
        row[j] = (row[j] + b[j]) * mask[i * k + j];
    else
      for (long j = 0; j < k; ++j)
        row[j] += b[j];
  }
}

/* f'(x) gy from an activation's output y, as activations.py's NumPy gradient
   computes it, operation by operation. */
static inline float tanh_slope(float y, float gy, float alpha)
{
  (void)alpha;
  return (1.0f - y * y) * gy;
}

static inline float sigmoid_slope(float y, float gy, float alpha)
{
  (void)alpha;
  return (1.0f - y) * (gy * y);
}

static inline float relu_slope(float y, float gy, float alpha)
{
  (void)alpha;
  return (y > 0.0f ? 1.0f : 0.0f) * gy;
}

static inline float leaky_relu_slope(float y, float gy, float alpha)
{
  return y > 0.0f ? gy : gy * alpha;
}

/* dz = slope(y, gy) for n elements, times the mask if any. */
static inline __attribute__((always_inline)) void
slopes(float (*slope)(float, float, float), const float *y, const float *gy, float *dz,
       const float *mask, long n, float alpha)
{
  if (mask)  /* two loops: gcc vectorises each */
    for (long e = 0; e < n; ++e)
      dz[e] = slope(y[e], gy[e], alpha) * mask[e];
  else
    for (long e = 0; e < n; ++e)
      dz[e] = slope(y[e], gy[e], alpha);
}

/* dz = f'(x) gy for activation f (TANH, SIGMOID, RELU or LEAKY_RELU, alpha its
   parameter), times the mask if any; db its column sums. */
void dense_backward(const float *y, const float *gy, float *dz, const float *mask, float *db,
                    long n, long k, int activation, float alpha)
{
  switch (activation) {
  case TANH: slopes(tanh_slope, y, gy, dz, mask, n * k, alpha); break;
  case SIGMOID: slopes(sigmoid_slope, y, gy, dz, mask, n * k, alpha); break;
  case RELU: slopes(relu_slope, y, gy, dz, mask, n * k, alpha); break;
  case LEAKY_RELU: slopes(leaky_relu_slope, y, gy, dz, mask, n * k, alpha); break;
  }
  column_sums(dz, db, n, k);
}

/* The output stage before its exp: z <- z + b; a row's hit where its first
   largest logit (a NaN counting as largest) is at its class; z <- z - that logit. */
void logits_shifted(float *z, const float *b, const uint64_t *state, const int64_t *classes,
                    bool *hits, long n, long k)
{
  classes += state[OFFSET];
  hits += state[OFFSET];
  for (long i = 0; i < n; ++i) {
    float *row = z + i * k;
    for (long j = 0; j < k; ++j)
      row[j] += b[j];
    const long top = first_largest(row, k);
    const float largest = row[top];
    hits[i] = top == classes[i];
    for (long j = 0; j < k; ++j)
      row[j] -= largest;
  }
}

/* The output stage after it: a row's loss -(z_class - log_total), the gradient
   (e / total - a) scale in place of e, and its column sums into db. */
void losses_and_gradient(const float *z, float *e, const float *total, const float *log_total,
                         const float *a, const uint64_t *state, const int64_t *classes,
                         double *losses, float *db, long n, long k, float scale)
{
  a += state[OFFSET] * k;
  classes += state[OFFSET];
  losses += state[OFFSET];
  for (long i = 0; i < n; ++i) {
    losses[i] = -(z[i * k + classes[i]] - log_total[i]);
    gradient_row(e + i * k, total[i], a + i * k, k, scale);
  }
  column_sums(e, db, n, k);
}

/* velocity = momentum velocity + damping grad; param -= lr velocity. */
void momentum_update(float *param, float *velocity, const float *grad, long n, float lr,
                     float momentum, float damping)
{
  for (long e = 0; e < n; ++e) {
    float v = velocity[e] * momentum;
    v += damping * grad[e];
    velocity[e] = v;
    param[e] -= lr * v;
  }
}

/* The graph step's update: momentum_update with the rates (lr, momentum,
   damping) read from the device; then the state of the next step, state += delta. */
void momentum_update_and_advance(float *param, float *velocity, const float *grad, long n,
                                 const float *rates, uint64_t *state, const uint64_t *delta)
{
  momentum_update(param, velocity, grad, n, rates[0], rates[1], rates[2]);
  for (int s = 0; s < STATE_SIZE; ++s)
    state[s] += delta[s];
}
