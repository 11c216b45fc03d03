// CPU selective scan (Mamba-1), forward and backward, float32.
//
//   h_t = exp(dt_t * A) h_{t-1} + dt_t * B_t * u_t,   y_t = C_t . h_t + D u_t,   y_t *= silu(z_t)
//   dt_t = softplus(delta_t + bias)
//
// Work is split into tasks of (batch, block of W = 8 neighbouring channels). Inside a task
// the 8 channels are the SIMD lanes: every load of u, delta, z, y is contiguous in the
// model's (B, L, D) layout, B_t[n] and C_t[n] are broadcast, and the state (N x 8 floats)
// stays in registers / L1. Nothing of size (B, L, D, N) is ever stored. The forward keeps
// the state every CHUNK steps; the backward recomputes each chunk from its checkpoint into
// a small local buffer and runs the reverse recurrence. Gradients of B and C (shared by all
// channels) go to a private slice per channel block and are summed in a fixed order, so
// results do not depend on the number of threads. Channels past D in the last block are
// padded lanes with zero input, zero state and zero output gradient: they contribute 0.
//
// Layouts: u, delta, z, out, grads: (B, L, D); Bm, Cm: (B, L, N); A: (D, N); Dv, bias: (D);
// h0, h_last: (B, D, N); checkpoints: (B, n_blocks, n_chunks, N, W).
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <vector>

static constexpr int64_t CHUNK = 64;
static constexpr int W = 8;

static inline float softplus(float x) { return x <= 20.f ? std::log1p(std::exp(x)) : x; }
static inline float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }

struct Args {
  int64_t Bsz, L, D, N, n_blocks, n_chunks;
  const float *u, *delta, *A, *Bm, *Cm, *Dv, *z, *bias, *h0;
  bool has_z, has_h0;
};

// Loads a channel block's per-channel constants with zero padding past D.
template <int NT>
static inline void load_block(const Args& a, int64_t d0, float* Ab, float* Db, float* bb) {
  const int N = NT > 0 ? NT : (int)a.N;
  for (int j = 0; j < W; ++j) {
    const int64_t d = d0 + j;
    const bool ok = d < a.D;
    Db[j] = ok ? a.Dv[d] : 0.f;
    bb[j] = ok ? a.bias[d] : 0.f;
    for (int n = 0; n < N; ++n) Ab[n * W + j] = ok ? a.A[d * a.N + n] : 0.f;
  }
}

template <int NT>
static void fwd_impl(const Args& a, float* out, float* h_last, float* ckpt) {
  const int N = NT > 0 ? NT : (int)a.N;
  at::parallel_for(0, a.Bsz * a.n_blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> hv(N * W), Av(N * W);
    float* __restrict__ h = hv.data();
    float* __restrict__ Ab = Av.data();
    float Db[W], bb[W], dt[W], x[W], y[W];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / a.n_blocks, blk = task % a.n_blocks, d0 = blk * W;
      const int nw = (int)std::min<int64_t>(W, a.D - d0);
      load_block<NT>(a, d0, Ab, Db, bb);
      for (int n = 0; n < N; ++n)
        for (int j = 0; j < W; ++j)
          h[n * W + j] = (a.has_h0 && j < nw) ? a.h0[(b * a.D + d0 + j) * a.N + n] : 0.f;
      for (int64_t t = 0; t < a.L; ++t) {
        const int64_t base = (b * a.L + t) * a.D + d0;
        for (int j = 0; j < W; ++j) {
          x[j] = j < nw ? a.u[base + j] : 0.f;
          dt[j] = softplus((j < nw ? a.delta[base + j] : 0.f) + bb[j]);
          y[j] = Db[j] * x[j];
        }
        const float* Bt = a.Bm + (b * a.L + t) * a.N;
        const float* Ct = a.Cm + (b * a.L + t) * a.N;
        for (int n = 0; n < N; ++n) {
          const float Bn = Bt[n], Cn = Ct[n];
          for (int j = 0; j < W; ++j) {
            h[n * W + j] = std::exp(dt[j] * Ab[n * W + j]) * h[n * W + j] + dt[j] * x[j] * Bn;
            y[j] += Cn * h[n * W + j];
          }
        }
        if (a.has_z)
          for (int j = 0; j < nw; ++j) { const float zz = a.z[base + j]; y[j] *= zz * sigmoid(zz); }
        for (int j = 0; j < nw; ++j) out[base + j] = y[j];
        if ((t + 1) % CHUNK == 0 || t == a.L - 1) {
          float* ck = ckpt + ((task * a.n_chunks) + t / CHUNK) * N * W;
          for (int i = 0; i < N * W; ++i) ck[i] = h[i];
        }
      }
      for (int j = 0; j < nw; ++j)
        for (int n = 0; n < N; ++n) h_last[(b * a.D + d0 + j) * a.N + n] = h[n * W + j];
    }
  });
}

template <int NT>
static void bwd_impl(const Args& a, const float* ckpt, const float* dout, const float* dh_last,
                     float* du, float* ddelta, float* dz, float* dA_part, float* dB_part, float* dC_part,
                     float* dD_part, float* dbias_part, float* dh0) {
  const int N = NT > 0 ? NT : (int)a.N;
  at::parallel_for(0, a.Bsz * a.n_blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> hsv((CHUNK + 1) * N * W), eav(CHUNK * N * W), dtsv(CHUNK * W), dhv(N * W), Av(N * W), dAv(N * W);
    float* __restrict__ hs = hsv.data();
    float* __restrict__ ea = eav.data();
    float* __restrict__ dts = dtsv.data();
    float* __restrict__ dh = dhv.data();
    float* __restrict__ Ab = Av.data();
    float* __restrict__ dAb = dAv.data();
    float Db[W], bb[W], g[W], x[W], dx[W], ddt[W], dDb[W], dbb[W];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / a.n_blocks, blk = task % a.n_blocks, d0 = blk * W;
      const int nw = (int)std::min<int64_t>(W, a.D - d0);
      load_block<NT>(a, d0, Ab, Db, bb);
      float* dBp = dB_part + task * a.L * N;  // (B, n_blocks, L, N)
      float* dCp = dC_part + task * a.L * N;
      for (int i = 0; i < N * W; ++i) dAb[i] = 0.f;
      for (int j = 0; j < W; ++j) { dDb[j] = 0.f; dbb[j] = 0.f; }
      for (int n = 0; n < N; ++n)
        for (int j = 0; j < W; ++j)
          dh[n * W + j] = j < nw ? dh_last[(b * a.D + d0 + j) * a.N + n] : 0.f;
      for (int64_t c = a.n_chunks - 1; c >= 0; --c) {
        const int64_t t0 = c * CHUNK, t1 = std::min(a.L, t0 + CHUNK);
        // recompute: hs[k] is the state before step t0 + k
        if (c == 0) {
          for (int n = 0; n < N; ++n)
            for (int j = 0; j < W; ++j)
              hs[n * W + j] = (a.has_h0 && j < nw) ? a.h0[(b * a.D + d0 + j) * a.N + n] : 0.f;
        } else {
          const float* ck = ckpt + ((task * a.n_chunks) + c - 1) * N * W;
          for (int i = 0; i < N * W; ++i) hs[i] = ck[i];
        }
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t k = t - t0, base = (b * a.L + t) * a.D + d0;
          for (int j = 0; j < W; ++j) {
            x[j] = j < nw ? a.u[base + j] : 0.f;
            dts[k * W + j] = softplus((j < nw ? a.delta[base + j] : 0.f) + bb[j]);
          }
          const float* Bt = a.Bm + (b * a.L + t) * a.N;
          for (int n = 0; n < N; ++n) {
            const float Bn = Bt[n];
            for (int j = 0; j < W; ++j) {
              const float e = std::exp(dts[k * W + j] * Ab[n * W + j]);
              ea[(k * N + n) * W + j] = e;
              hs[((k + 1) * N + n) * W + j] = e * hs[(k * N + n) * W + j] + dts[k * W + j] * x[j] * Bn;
            }
          }
        }
        for (int64_t t = t1 - 1; t >= t0; --t) {
          const int64_t k = t - t0, base = (b * a.L + t) * a.D + d0;
          const float* Bt = a.Bm + (b * a.L + t) * a.N;
          const float* Ct = a.Cm + (b * a.L + t) * a.N;
          const float* ht = hs + (k + 1) * N * W;
          const float* hp = hs + k * N * W;
          const float* dt = dts + k * W;
          for (int j = 0; j < W; ++j) {
            x[j] = j < nw ? a.u[base + j] : 0.f;
            g[j] = j < nw ? dout[base + j] : 0.f;
          }
          if (a.has_z) {
            for (int j = 0; j < nw; ++j) {
              float ypre = Db[j] * x[j];
              for (int n = 0; n < N; ++n) ypre += Ct[n] * ht[n * W + j];
              const float zz = a.z[base + j], sg = sigmoid(zz);
              dz[base + j] = g[j] * ypre * sg * (1.f + zz * (1.f - sg));
              g[j] *= zz * sg;
            }
          }
          for (int j = 0; j < W; ++j) { dDb[j] += g[j] * x[j]; dx[j] = g[j] * Db[j]; ddt[j] = 0.f; }
          float* dBt = dBp + t * N;
          float* dCt = dCp + t * N;
          for (int n = 0; n < N; ++n) {
            const float Bn = Bt[n], Cn = Ct[n];
            float sC = 0.f, sB = 0.f;
            for (int j = 0; j < W; ++j) {
              const int i = n * W + j;
              sC += g[j] * ht[i];
              const float dhn = dh[i] + g[j] * Cn;
              const float e = ea[(k * N + n) * W + j];
              const float dlogA = dhn * hp[i] * e;   // d/d(dt*A) of e * h_prev
              ddt[j] += dlogA * Ab[i] + dhn * Bn * x[j];
              dAb[i] += dlogA * dt[j];
              sB += dhn * dt[j] * x[j];
              dx[j] += dhn * dt[j] * Bn;
              dh[i] = dhn * e;
            }
            dCt[n] = sC;   // each (task, t, n) is written exactly once: no zero-fill needed
            dBt[n] = sB;
          }
          for (int j = 0; j < nw; ++j) {
            const float raw = a.delta[base + j] + bb[j];
            const float draw = ddt[j] * sigmoid(raw);
            ddelta[base + j] = draw;
            dbb[j] += draw;
            du[base + j] = dx[j];
          }
        }
      }
      for (int j = 0; j < nw; ++j) {
        const int64_t row = b * a.D + d0 + j;
        for (int n = 0; n < N; ++n) { dA_part[row * N + n] = dAb[n * W + j]; dh0[row * N + n] = dh[n * W + j]; }
        dD_part[row] = dDb[j];
        dbias_part[row] = dbb[j];
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
  auto dB_part = torch::empty({a.Bsz, a.n_blocks, a.L, a.N}, u.options());
  auto dC_part = torch::empty({a.Bsz, a.n_blocks, a.L, a.N}, u.options());
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
  for (int64_t b = 0; b < Bsz; ++b) {
    const float* Bb = Bp + b * N;
    const float* Cb = Cp + b * N;
    for (int64_t d = 0; d < D; ++d) {
      const float xv = xp[b * D + d], dtv = softplus(dtp[b * D + d] + bp[d]);
      float* hd = h + (b * D + d) * N;
      const float* Ad = Ap + d * N;
      float acc = 0.f;
      for (int64_t n = 0; n < N; ++n) {
        hd[n] = std::exp(dtv * Ad[n]) * hd[n] + dtv * Bb[n] * xv;
        acc += Cb[n] * hd[n];
      }
      float out = acc + Dp[d] * xv;
      if (has_z) { const float zv = zp[b * D + d]; out *= zv * sigmoid(zv); }
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
