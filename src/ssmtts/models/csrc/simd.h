// SIMD lanes and inline math shared by the CPU kernels (selective_scan.cpp, causal_conv.cpp).
//
// The lanes are a GCC/Clang vector type (`vf`, W floats), so kernels say what each step does to
// all lanes and the compiler emits AVX / AVX-512 / NEON without intrinsics. exp, softplus and
// sigmoid are inline polynomials on `vf`: calling libm once per lane cost more than the whole
// selective-scan recurrence.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

// One register of lanes: twice the work per instruction with AVX-512 even where the core runs it
// as two 256-bit halves (Zen 4): fewer instructions in flight for the same arithmetic.
#if defined(__AVX512F__)
static constexpr int W = 16;   // zmm
#else
static constexpr int W = 8;    // ymm (AVX2), or two xmm / NEON registers
#endif

typedef float vf __attribute__((vector_size(4 * W)));     // W float lanes
typedef int32_t vi __attribute__((vector_size(4 * W)));   // W int lanes (masks: -1 true, 0 false)

static inline vf splat(float s) { return vf{} + s; }
static inline vf loadv(const float* p) { vf v; std::memcpy(&v, p, sizeof v); return v; }
static inline void storev(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
static inline vf vmax(vf a, vf b) { return a > b ? a : b; }
static inline vf vmin(vf a, vf b) { return a < b ? a : b; }

// exp(x) = 2^n e^r, n = round(x log2e), r = x - n ln2 in [-ln2/2, ln2/2], e^r by Cephes' expf
// polynomial: relative error < 3.1e-7 over the clamped range (tests/test_scan.py checks it
// against float64). ln2 is one constant here: -ffast-math would fold a two-part split anyway.
// Inputs are clamped to [-87.3, 88.7]: below, the result is 1e-38 instead of 0 (no denormals).
// With AVX-512 the rounding and the scaling by 2^n are one instruction each (roundscale,
// scalef): exp is most of the selective scan's work.
#if defined(__AVX512F__)
#include <immintrin.h>
static inline vf round_nearest(vf t) { return (vf)_mm512_roundscale_ps((__m512)t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline vf times_pow2(vf p, vf n) { return (vf)_mm512_scalef_ps((__m512)p, (__m512)n); }
#else
static inline vf round_nearest(vf t) {   // by truncation, shifted by 128 so that it is positive
  return __builtin_convertvector(__builtin_convertvector(t + 128.5f, vi) - 128, vf);
}
static inline vf times_pow2(vf p, vf n) {   // 2^n built in the exponent bits
  return p * (vf)((__builtin_convertvector(n, vi) + 127) << 23);
}
#endif
static inline vf fast_exp(vf x) {
  x = vmin(vmax(x, splat(-87.3f)), splat(88.7f));
  const vf n = round_nearest(x * 1.44269504088896341f);
  const vf r = x - n * 0.693147181f;
  vf p = splat(1.9875691500e-4f);                              // e^r = 1 + r + r^2 (1/2 + r/6 + ...)
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  return times_pow2(p, n);
}

// log1p(y) for y in [0, 1] (all softplus needs): 2 atanh(s), s = y / (2 + y) <= 1/3, as its odd
// series to s^15 (truncation < 2e-9 relative). No cancellation, so it stays accurate for tiny y
// and under -ffast-math reassociation.
static inline vf log1p_unit(vf y) {
  const vf s = y / (y + 2.f), s2 = s * s;
  vf p = splat(1.f / 15.f);
  p = p * s2 + 1.f / 13.f;
  p = p * s2 + 1.f / 11.f;
  p = p * s2 + 1.f / 9.f;
  p = p * s2 + 1.f / 7.f;
  p = p * s2 + 1.f / 5.f;
  p = p * s2 + 1.f / 3.f;
  p = p * s2 + 1.f;
  return 2.f * s * p;
}

// softplus(x) = max(x, 0) + log1p(exp(-|x|)): one branch-free form for every x.
static inline vf softplus(vf x) { return vmax(x, splat(0.f)) + log1p_unit(fast_exp(-vmax(x, -x))); }
static inline vf sigmoid(vf x) { return 1.f / (1.f + fast_exp(-x)); }
// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), odd-extended: GELU's exact form needs it.
static inline vf erf_approx(vf x) {
  const vf ax = vmax(x, -x);
  const vf t = 1.f / (1.f + 0.3275911f * ax);
  vf p = splat(1.061405429f);
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  const vf r = 1.f - p * t * fast_exp(-ax * ax);
  return x < 0.f ? -r : r;
}
// GELU (erf form, as torch's default) and its derivative 0.5 (1 + erf(x/sqrt2)) + x phi(x).
static inline vf gelu(vf x) { return 0.5f * x * (1.f + erf_approx(x * 0.70710678118654752f)); }
static inline vf gelu_grad(vf x) {
  return 0.5f * (1.f + erf_approx(x * 0.70710678118654752f)) + x * 0.39894228040143268f * fast_exp(-0.5f * x * x);
}
static inline float hsum(vf v) { float s = 0.f; for (int j = 0; j < W; ++j) s += v[j]; return s; }

// The W lanes of one row from channel c0 on; lanes past the last channel (nw < W) read as 0 and
// are not written.
static inline vf load_lanes(const float* src, int nw) {
  if (nw == W) return loadv(src);
  vf v = splat(0.f);
  for (int j = 0; j < nw; ++j) v[j] = src[j];
  return v;
}
static inline void store_lanes(float* dst, int nw, vf v) {
  if (nw == W) storev(dst, v);
  else for (int j = 0; j < nw; ++j) dst[j] = v[j];
}

// Tasks per thread chunk for at::parallel_for, given the lane-steps in one task: small problems
// (a generation step: L = 1) run inline, since waking a thread pool costs more than the work.
static inline int64_t grain_for(int64_t lane_steps_per_task) {
  const int64_t min_work = 1 << 15;
  return lane_steps_per_task >= min_work ? 1 : (min_work + lane_steps_per_task - 1) / lane_steps_per_task;
}
