// CPU selective scan (Mamba-1), forward and backward, float32.
//
//   h_t = exp(dt_t * A) h_{t-1} + dt_t * B_t * u_t,   y_t = C_t . h_t + D u_t,   y_t *= silu(z_t)
//   dt_t = softplus(delta_t + bias)
//
// Work is split into tasks of (batch, block of W = 8 neighbouring channels). Inside a task
// the 8 channels are the SIMD lanes: every load of u, delta, z, y is contiguous in the
// model's (B, L, D) layout, B_t[n] and C_t[n] are broadcast, and the state (N vectors of W
// lanes) stays in registers / L1. Nothing of size (B, L, D, N) is ever stored. The forward
// keeps the state every CHUNK steps; the backward recomputes each chunk from its checkpoint
// into a small local buffer and runs the reverse recurrence. Gradients of B and C (shared by
// all channels) go to a private slice per group of channel blocks and are summed in a fixed
// order, so results do not depend on the number of threads. Channels past D in the last
// block are padded lanes with zero input, zero state and zero output gradient: they add 0.
//
// SIMD: the lanes are a GCC/Clang vector type (`vf`, W floats), so the code says what each
// step does to all lanes and the compiler emits AVX / AVX-512 / NEON without intrinsics.
// exp, softplus and sigmoid are inline polynomials on `vf`: calling libm once per lane
// cost more than the whole recurrence.
//
// Layouts: u, delta, z, out, grads: (B, L, D); Bm, Cm: (B, L, N); A: (D, N); Dv, bias: (D);
// h0, h_last: (B, D, N); checkpoints: (B, n_blocks, n_chunks, N, W).
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

static constexpr int64_t CHUNK = 64;
static constexpr int W = 8;

typedef float vf __attribute__((vector_size(4 * W)));     // W float lanes
typedef int32_t vi __attribute__((vector_size(4 * W)));   // W int lanes (masks: -1 true, 0 false)

static inline vf splat(float s) { return vf{} + s; }
static inline vf loadv(const float* p) { vf v; std::memcpy(&v, p, sizeof v); return v; }
static inline void storev(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
static inline vf vmax(vf a, vf b) { return a > b ? a : b; }
static inline vf vmin(vf a, vf b) { return a < b ? a : b; }

// exp(x): Cephes expf (2^n * polynomial on [-ln2/2, ln2/2]), relative error < 3e-7. Inputs are
// clamped to [-87.3, 88.7]: below, the result is 1e-38 instead of 0 (no denormals).
static inline vf fast_exp(vf x) {
  x = vmin(vmax(x, splat(-87.3f)), splat(88.7f));
  // n = floor(x log2e + 1/2) by truncation, shifted by 128 so the argument is positive (> 2.5)
  const vi n = __builtin_convertvector(x * 1.44269504088896341f + 128.5f, vi) - 128;
  const vf nf = __builtin_convertvector(n, vf);
  const vf r = x - nf * 0.693359375f + nf * 2.12194440e-4f;   // x - n ln2, ln2 split for accuracy
  vf p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  return p * (vf)((n + 127) << 23);                      // times 2^n, built in the exponent bits
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
static inline float hsum(vf v) { float s = 0.f; for (int j = 0; j < W; ++j) s += v[j]; return s; }

struct Args {
  int64_t Bsz, L, D, N, n_blocks, n_chunks;
  const float *u, *delta, *A, *Bm, *Cm, *Dv, *z, *bias, *h0;
  bool has_z, has_h0;
};

// The W lanes of one (b, t) row from channel d0 on; lanes past D (nw < W) read as 0 / are not written.
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

// A channel block's constants (A as N lane-vectors, D, dt bias) and initial state, zero past D.
static inline void load_block(const Args& a, int N, int64_t b, int64_t d0, int nw, vf* Ab, vf& Db, vf& bb, vf* h) {
  Db = splat(0.f); bb = splat(0.f);
  for (int n = 0; n < N; ++n) { Ab[n] = splat(0.f); h[n] = splat(0.f); }
  for (int j = 0; j < nw; ++j) {
    const int64_t d = d0 + j;
    Db[j] = a.Dv[d];
    bb[j] = a.bias[d];
    for (int n = 0; n < N; ++n) {
      Ab[n][j] = a.A[d * a.N + n];
      if (a.has_h0) h[n][j] = a.h0[(b * a.D + d) * a.N + n];
    }
  }
}

template <int NT>
static void fwd_impl(const Args& a, float* out, float* h_last, float* ckpt) {
  const int N = NT > 0 ? NT : (int)a.N;
  at::parallel_for(0, a.Bsz * a.n_blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<vf> hv(N), Av(N);
    vf* __restrict__ h = hv.data();
    vf* __restrict__ Ab = Av.data();
    vf Db, bb;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / a.n_blocks, blk = task % a.n_blocks, d0 = blk * W;
      const int nw = (int)std::min<int64_t>(W, a.D - d0);
      load_block(a, N, b, d0, nw, Ab, Db, bb, h);
      for (int64_t t = 0; t < a.L; ++t) {
        const int64_t base = (b * a.L + t) * a.D + d0;
        const vf x = load_lanes(a.u + base, nw);
        const vf dt = softplus(load_lanes(a.delta + base, nw) + bb);
        const vf dtx = dt * x;
        vf y = Db * x;
        const float* Bt = a.Bm + (b * a.L + t) * a.N;
        const float* Ct = a.Cm + (b * a.L + t) * a.N;
        for (int n = 0; n < N; ++n) {
          h[n] = fast_exp(dt * Ab[n]) * h[n] + dtx * Bt[n];
          y += h[n] * Ct[n];
        }
        if (a.has_z) {
          const vf z = load_lanes(a.z + base, nw);
          y *= z * sigmoid(z);
        }
        store_lanes(out + base, nw, y);
        if ((t + 1) % CHUNK == 0 || t == a.L - 1)
          std::memcpy(ckpt + ((task * a.n_chunks) + t / CHUNK) * N * W, h, N * sizeof(vf));
      }
      for (int j = 0; j < nw; ++j)
        for (int n = 0; n < N; ++n) h_last[(b * a.D + d0 + j) * a.N + n] = h[n][j];
    }
  });
}

// Backward tasks are (batch, group of GROUP channel blocks): the group's dB/dC contributions are
// summed inside the task, so the per-task partials (B, n_groups, L, N) stay small.
static constexpr int64_t GROUP = 8;

template <int NT>
static void bwd_impl(const Args& a, const float* ckpt, const float* dout, const float* dh_last,
                     float* du, float* ddelta, float* dz, float* dA_part, float* dB_part, float* dC_part,
                     float* dD_part, float* dbias_part, float* dh0) {
  const int N = NT > 0 ? NT : (int)a.N;
  const int64_t n_groups = (a.n_blocks + GROUP - 1) / GROUP;
  at::parallel_for(0, a.Bsz * n_groups, 1, [&](int64_t begin, int64_t end) {
    std::vector<vf> hsv((CHUNK + 1) * N), eav(CHUNK * N), dtsv(CHUNK), dhv(N), Av(N), dAv(N), h0v(N);
    vf* __restrict__ hs = hsv.data();    // hs[k * N + n]: state before step t0 + k of the chunk
    vf* __restrict__ ea = eav.data();    // exp(dt A) of each step of the chunk
    vf* __restrict__ dts = dtsv.data();
    vf* __restrict__ dh = dhv.data();    // dL/dh, carried backwards in time
    vf* __restrict__ Ab = Av.data();
    vf* __restrict__ dAb = dAv.data();
    vf* __restrict__ h_init = h0v.data();
    vf Db, bb;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / n_groups, grp = task % n_groups;
      float* dBp = dB_part + task * a.L * N;  // (B, n_groups, L, N)
      float* dCp = dC_part + task * a.L * N;
      for (int64_t blk = grp * GROUP; blk < std::min(a.n_blocks, (grp + 1) * GROUP); ++blk) {
        const bool first = blk == grp * GROUP;   // the group's first block writes dB/dC, the others add
        const int64_t d0 = blk * W;
        const int nw = (int)std::min<int64_t>(W, a.D - d0);
        load_block(a, N, b, d0, nw, Ab, Db, bb, h_init);
        vf dDb = splat(0.f), dbb = splat(0.f);
        for (int n = 0; n < N; ++n) {
          dAb[n] = splat(0.f);
          dh[n] = splat(0.f);
          for (int j = 0; j < nw; ++j) dh[n][j] = dh_last[(b * a.D + d0 + j) * a.N + n];
        }
        for (int64_t c = a.n_chunks - 1; c >= 0; --c) {
          const int64_t t0 = c * CHUNK, t1 = std::min(a.L, t0 + CHUNK);
          if (c == 0) std::memcpy(hs, h_init, N * sizeof(vf));
          else std::memcpy(hs, ckpt + (((b * a.n_blocks + blk) * a.n_chunks) + c - 1) * N * W, N * sizeof(vf));
          for (int64_t t = t0; t < t1; ++t) {   // recompute the chunk's states
            const int64_t k = t - t0, base = (b * a.L + t) * a.D + d0;
            const vf dt = softplus(load_lanes(a.delta + base, nw) + bb);
            const vf dtx = dt * load_lanes(a.u + base, nw);
            dts[k] = dt;
            const float* Bt = a.Bm + (b * a.L + t) * a.N;
            for (int n = 0; n < N; ++n) {
              ea[k * N + n] = fast_exp(dt * Ab[n]);
              hs[(k + 1) * N + n] = ea[k * N + n] * hs[k * N + n] + dtx * Bt[n];
            }
          }
          for (int64_t t = t1 - 1; t >= t0; --t) {   // reverse recurrence
            const int64_t k = t - t0, base = (b * a.L + t) * a.D + d0;
            const float* Bt = a.Bm + (b * a.L + t) * a.N;
            const float* Ct = a.Cm + (b * a.L + t) * a.N;
            const vf* ht = hs + (k + 1) * N;
            const vf* hp = hs + k * N;
            const vf* e = ea + k * N;
            const vf dt = dts[k];
            const vf x = load_lanes(a.u + base, nw);
            const vf raw = load_lanes(a.delta + base, nw) + bb;
            vf g = load_lanes(dout + base, nw);             // dL/dy_t
            if (a.has_z) {   // y = ypre * silu(z): gradient of z, and g becomes dL/dypre
              const vf z = load_lanes(a.z + base, nw);
              vf ypre = Db * x;
              for (int n = 0; n < N; ++n) ypre += ht[n] * Ct[n];
              const vf sg = sigmoid(z);
              store_lanes(dz + base, nw, g * ypre * sg * (1.f + z * (1.f - sg)));
              g *= z * sg;
            }
            dDb += g * x;
            vf dx = g * Db, ddt = splat(0.f);
            const vf dtx = dt * x;
            float* dBt = dBp + t * N;
            float* dCt = dCp + t * N;
            for (int n = 0; n < N; ++n) {
              const vf dhn = dh[n] + g * Ct[n];            // dL/dh_t
              const vf dlogA = dhn * hp[n] * e[n];         // dL/d(dt A) through exp(dt A) h_{t-1}
              const float sc = hsum(g * ht[n]), sb = hsum(dhn * dtx);
              dCt[n] = first ? sc : dCt[n] + sc;
              dBt[n] = first ? sb : dBt[n] + sb;
              ddt += dlogA * Ab[n] + dhn * x * Bt[n];
              dAb[n] += dlogA * dt;
              dx += dhn * dt * Bt[n];
              dh[n] = dhn * e[n];                          // dL/dh_{t-1}
            }
            const vf draw = ddt * sigmoid(raw);            // softplus' = sigmoid
            dbb += draw;
            store_lanes(ddelta + base, nw, draw);
            store_lanes(du + base, nw, dx);
          }
        }
        for (int j = 0; j < nw; ++j) {
          const int64_t row = b * a.D + d0 + j;
          for (int n = 0; n < N; ++n) { dA_part[row * N + n] = dAb[n][j]; dh0[row * N + n] = dh[n][j]; }
          dD_part[row] = dDb[j];
          dbias_part[row] = dbb[j];
        }
      }
    }
  });
}

static Args make_args(torch::Tensor& u, torch::Tensor& delta, torch::Tensor& A, torch::Tensor& Bm,
                      torch::Tensor& Cm, torch::Tensor& Dv, torch::Tensor& z, torch::Tensor& bias,
                      torch::Tensor& h0, bool has_z, bool has_h0) {
  Args a;
  a.Bsz = u.size(0); a.L = u.size(1); a.D = u.size(2); a.N = A.size(1);
  a.n_blocks = (a.D + W - 1) / W; a.n_chunks = (a.L + CHUNK - 1) / CHUNK;
  a.u = u.data_ptr<float>(); a.delta = delta.data_ptr<float>(); a.A = A.data_ptr<float>();
  a.Bm = Bm.data_ptr<float>(); a.Cm = Cm.data_ptr<float>(); a.Dv = Dv.data_ptr<float>();
  a.bias = bias.data_ptr<float>(); a.z = has_z ? z.data_ptr<float>() : nullptr;
  a.h0 = has_h0 ? h0.data_ptr<float>() : nullptr; a.has_z = has_z; a.has_h0 = has_h0;
  return a;
}

#define DISPATCH_N(N, FN, ...)                         \
  switch (N) {                                         \
    case 8: FN<8>(__VA_ARGS__); break;                 \
    case 16: FN<16>(__VA_ARGS__); break;               \
    case 32: FN<32>(__VA_ARGS__); break;               \
    case 64: FN<64>(__VA_ARGS__); break;               \
    default: FN<0>(__VA_ARGS__);                       \
  }

std::vector<torch::Tensor> scan_fwd(torch::Tensor u, torch::Tensor delta, torch::Tensor A, torch::Tensor Bm,
                                    torch::Tensor Cm, torch::Tensor Dv, torch::Tensor z, torch::Tensor bias,
                                    torch::Tensor h0, bool has_z, bool has_h0) {
  Args a = make_args(u, delta, A, Bm, Cm, Dv, z, bias, h0, has_z, has_h0);
  auto out = torch::empty_like(u);
  auto h_last = torch::empty({a.Bsz, a.D, a.N}, u.options());
  auto ckpt = torch::empty({a.Bsz, a.n_blocks, a.n_chunks, a.N, W}, u.options());
  DISPATCH_N(a.N, fwd_impl, a, out.data_ptr<float>(), h_last.data_ptr<float>(), ckpt.data_ptr<float>());
  return {out, h_last, ckpt};
}

// Returns du, ddelta, dA, dB, dC, dD, dz, dbias, dh0.
std::vector<torch::Tensor> scan_bwd(torch::Tensor u, torch::Tensor delta, torch::Tensor A, torch::Tensor Bm,
                                    torch::Tensor Cm, torch::Tensor Dv, torch::Tensor z, torch::Tensor bias,
                                    torch::Tensor h0, torch::Tensor ckpt, torch::Tensor dout,
                                    torch::Tensor dh_last, bool has_z, bool has_h0) {
  Args a = make_args(u, delta, A, Bm, Cm, Dv, z, bias, h0, has_z, has_h0);
  auto du = torch::empty_like(u), ddelta = torch::empty_like(u);
  auto dz = has_z ? torch::empty_like(u) : torch::zeros({0}, u.options());
  auto dA_part = torch::empty({a.Bsz, a.D, a.N}, u.options());
  auto dD_part = torch::empty({a.Bsz, a.D}, u.options()), dbias_part = torch::empty({a.Bsz, a.D}, u.options());
  const int64_t n_groups = (a.n_blocks + GROUP - 1) / GROUP;
  auto dB_part = torch::empty({a.Bsz, n_groups, a.L, a.N}, u.options());
  auto dC_part = torch::empty({a.Bsz, n_groups, a.L, a.N}, u.options());
  auto dh0 = torch::empty({a.Bsz, a.D, a.N}, u.options());
  DISPATCH_N(a.N, bwd_impl, a, ckpt.data_ptr<float>(), dout.data_ptr<float>(), dh_last.data_ptr<float>(),
             du.data_ptr<float>(), ddelta.data_ptr<float>(), has_z ? dz.data_ptr<float>() : nullptr,
             dA_part.data_ptr<float>(), dB_part.data_ptr<float>(), dC_part.data_ptr<float>(),
             dD_part.data_ptr<float>(), dbias_part.data_ptr<float>(), dh0.data_ptr<float>());
  return {du, ddelta, dA_part.sum(0), dB_part.sum(1), dC_part.sum(1), dD_part.sum(0), dz, dbias_part.sum(0), dh0};
}

// One generation step, in place on the state (mamba-ssm's selective_state_update):
//   state (B, D, N) <- exp(dt A) state + dt B x;  y (B, D) = C . state + D x  (* silu(z))
// x, dt, z: (B, D); Bm, Cm: (B, N). One call per layer and frame: no graph, no temporaries.
torch::Tensor state_step(torch::Tensor state, torch::Tensor x, torch::Tensor dt, torch::Tensor A, torch::Tensor Bm,
                         torch::Tensor Cm, torch::Tensor Dv, torch::Tensor z, torch::Tensor bias, bool has_z) {
  const int64_t Bsz = state.size(0), D = state.size(1), N = state.size(2);
  auto y = torch::empty({Bsz, D}, x.options());
  float *h = state.data_ptr<float>(), *yp = y.data_ptr<float>();
  const float *xp = x.data_ptr<float>(), *dtp = dt.data_ptr<float>(), *Ap = A.data_ptr<float>(),
              *Bp = Bm.data_ptr<float>(), *Cp = Cm.data_ptr<float>(), *Dp = Dv.data_ptr<float>(),
              *bp = bias.data_ptr<float>(), *zp = has_z ? z.data_ptr<float>() : nullptr;
  // Lanes run over the state index n here (contiguous in (B, D, N)); a ragged tail is zero-padded.
  for (int64_t b = 0; b < Bsz; ++b) {
    for (int64_t d = 0; d < D; ++d) {
      const float xv = xp[b * D + d];
      const vf dtv = softplus(splat(dtp[b * D + d] + bp[d]));
      float* hd = h + (b * D + d) * N;
      vf acc = splat(0.f);
      for (int64_t n0 = 0; n0 < N; n0 += W) {
        const int nw = (int)std::min<int64_t>(W, N - n0);
        const vf hn = fast_exp(dtv * load_lanes(Ap + d * N + n0, nw)) * load_lanes(hd + n0, nw)
                      + dtv * xv * load_lanes(Bp + b * N + n0, nw);
        store_lanes(hd + n0, nw, hn);
        acc += load_lanes(Cp + b * N + n0, nw) * hn;
      }
      float out = hsum(acc) + Dp[d] * xv;
      if (has_z) { const float zv = zp[b * D + d]; out *= zv * sigmoid(splat(zv))[0]; }
      yp[b * D + d] = out;
    }
  }
  return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("step", &state_step, "one-frame selective state update, in place (CPU)");
  m.def("fwd", &scan_fwd, "selective scan forward (CPU)");
  m.def("bwd", &scan_bwd, "selective scan backward (CPU)");
}
