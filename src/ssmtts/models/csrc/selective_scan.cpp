// CPU selective scan (Mamba-1), forward and backward, float32.
//
//   h_t = exp(dt_t * A) h_{t-1} + dt_t * B_t * u_t,   y_t = C_t . h_t + D u_t,   y_t *= silu(z_t)
//   dt_t = softplus(delta_t + bias)
//
// Channels come in blocks of W neighbours (8 or 16, simd.h), the SIMD lanes: every load of u, delta, z, y
// is contiguous in the model's (B, L, D) layout, B_t[n] and C_t[n] are broadcast, and a
// block's state (N vectors of W lanes) stays in registers / L1. A task is one batch row and a
// group of blocks (see GROUP). Nothing of size (B, L, D, N) is ever stored. The forward
// keeps the state every CHUNK steps; the backward recomputes each chunk from its checkpoint
// into a small local buffer and runs the reverse recurrence. Gradients of B and C (shared by
// all channels) go to a private slice per group of channel blocks and are summed in a fixed
// order, so results do not depend on the number of threads. Channels past D in the last
// block are padded lanes with zero input, zero state and zero output gradient: they add 0.
//
// SIMD lanes and the inline exp / softplus / sigmoid are in simd.h.
//
// Layouts: u, delta, out, grads: (B, L, D) contiguous; z: (B, L, D), channels contiguous;
// Bm, Cm: (B, L, N); A: (D, N); Dv, bias: (D); h0, h_last: (B, D, N);
// checkpoints: (B, n_blocks, n_chunks, N, W).
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <vector>

#include "simd.h"

static constexpr int64_t CHUNK = 64;
struct Args {
  int64_t Bsz, L, D, N, n_blocks, n_chunks;
  const float *u, *delta, *A, *Bm, *Cm, *Dv, *z, *bias, *h0;
  int64_t z_sb, z_st;   // z may be a strided view (the gate half of in_proj's output): batch, time strides
  bool has_z, has_h0;
  const float* z_row(int64_t b, int64_t t, int64_t d0) const { return z + b * z_sb + t * z_st + d0; }
};

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

// Tasks are (batch, group of GROUP channel blocks), and each task walks time in chunks of CHUNK
// steps, running every block of its group over one chunk before the next chunk. So each (b, t)
// row is read as GROUP * W contiguous floats rather than W scattered ones (far fewer cache lines
// and pages touched per byte), and the backward sums the group's dB/dC contributions inside
// the task, keeping the per-task partials (B, n_groups, L, N) small.
static constexpr int64_t GROUP = 8;

struct Tile {   // the blocks of one task
  int64_t b, blk0, n;
  Tile(const Args& a, int64_t task, int64_t n_groups)
      : b(task / n_groups), blk0((task % n_groups) * GROUP), n(std::min(GROUP, a.n_blocks - blk0)) {}
  int64_t d0(int64_t gi) const { return (blk0 + gi) * W; }
};

template <int NT>
static void fwd_impl(const Args& a, float* out, float* h_last, float* ckpt) {
  const int N = NT > 0 ? NT : (int)a.N;
  const int64_t n_groups = (a.n_blocks + GROUP - 1) / GROUP;
  at::parallel_for(0, a.Bsz * n_groups, grain_for(a.L * GROUP * W), [&](int64_t begin, int64_t end) {
    std::vector<vf> hv(GROUP * N), Av(GROUP * N), Dv(GROUP), bv(GROUP);
    for (int64_t task = begin; task < end; ++task) {
      const Tile tile(a, task, n_groups);
      const int64_t b = tile.b;
      for (int64_t gi = 0; gi < tile.n; ++gi)
        load_block(a, N, b, tile.d0(gi), (int)std::min<int64_t>(W, a.D - tile.d0(gi)), &Av[gi * N], Dv[gi],
                   bv[gi], &hv[gi * N]);
      for (int64_t c = 0; c < a.n_chunks; ++c) {
        const int64_t t0 = c * CHUNK, t1 = std::min(a.L, t0 + CHUNK);
        for (int64_t gi = 0; gi < tile.n; ++gi) {
          const int64_t d0 = tile.d0(gi);
          const int nw = (int)std::min<int64_t>(W, a.D - d0);
          vf* __restrict__ h = &hv[gi * N];
          const vf* __restrict__ Ab = &Av[gi * N];
          const vf Db = Dv[gi], bb = bv[gi];
          for (int64_t t = t0; t < t1; ++t) {
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
              const vf z = load_lanes(a.z_row(b, t, d0), nw);
              y *= z * sigmoid(z);
            }
            store_lanes(out + base, nw, y);
          }
          std::memcpy(ckpt + (((b * a.n_blocks + tile.blk0 + gi) * a.n_chunks) + c) * N * W, h, N * sizeof(vf));
        }
      }
      for (int64_t gi = 0; gi < tile.n; ++gi) {
        const int64_t d0 = tile.d0(gi);
        for (int j = 0; j < std::min<int64_t>(W, a.D - d0); ++j)
          for (int n = 0; n < N; ++n) h_last[(b * a.D + d0 + j) * a.N + n] = hv[gi * N + n][j];
      }
    }
  });
}

template <int NT>
static void bwd_impl(const Args& a, const float* ckpt, const float* dout, const float* dh_last,
                     float* du, float* ddelta, float* dz, float* dA_part, float* dB_part, float* dC_part,
                     float* dD_part, float* dbias_part, float* dh0) {
  const int N = NT > 0 ? NT : (int)a.N;
  constexpr int NG = NT > 0 && NT % 16 == 0 ? 16 : NT > 0 && NT % 8 == 0 ? 8 : 1;   // state indices kept in registers
  const int64_t n_groups = (a.n_blocks + GROUP - 1) / GROUP;
  at::parallel_for(0, a.Bsz * n_groups, grain_for(a.L * GROUP * W), [&](int64_t begin, int64_t end) {
    // per block of the tile: constants, initial state, dL/dh carried backwards in time, dA, dD, dbias
    std::vector<vf> Av(GROUP * N), h0v(GROUP * N), dhv(GROUP * N), dAv(GROUP * N), Dv(GROUP), bv(GROUP),
        dDv(GROUP), dbv(GROUP);
    // one block's chunk, recomputed forwards: ea = exp(dt A) and q = exp(dt A) h_{t-1} per step
    // and state index (what the reverse recurrence needs), dt and g = dL/d(C.h + D u) per step
    std::vector<vf> qv(CHUNK * N), eav(CHUNK * N), dtsv(CHUNK), dtxv(CHUNK), gv(CHUNK), hv(N), dhBv(CHUNK), dlAv(CHUNK);
    // dB_t[n], dC_t[n] of the chunk, per lane and summed over the tile's blocks; the lanes are
    // summed once per tile (a horizontal sum per block and step cost as much as the rest)
    std::vector<vf> sBv(CHUNK * N), sCv(CHUNK * N);
    vf* __restrict__ qs = qv.data();
    vf* __restrict__ ea = eav.data();
    vf* __restrict__ dts = dtsv.data();
    vf* __restrict__ gs = gv.data();
    vf* __restrict__ dtxs = dtxv.data();
    vf* __restrict__ dhBs = dhBv.data();
    vf* __restrict__ dlAs = dlAv.data();
    vf* __restrict__ h = hv.data();
    for (int64_t task = begin; task < end; ++task) {
      const Tile tile(a, task, n_groups);
      const int64_t b = tile.b;
      float* dBp = dB_part + task * a.L * N;  // (B, n_groups, L, N)
      float* dCp = dC_part + task * a.L * N;
      for (int64_t gi = 0; gi < tile.n; ++gi) {
        const int64_t d0 = tile.d0(gi);
        const int nw = (int)std::min<int64_t>(W, a.D - d0);
        load_block(a, N, b, d0, nw, &Av[gi * N], Dv[gi], bv[gi], &h0v[gi * N]);
        dDv[gi] = splat(0.f);
        dbv[gi] = splat(0.f);
        for (int n = 0; n < N; ++n) {
          dAv[gi * N + n] = splat(0.f);
          dhv[gi * N + n] = splat(0.f);
          for (int j = 0; j < nw; ++j) dhv[gi * N + n][j] = dh_last[(b * a.D + d0 + j) * a.N + n];
        }
      }
      for (int64_t c = a.n_chunks - 1; c >= 0; --c) {
        const int64_t t0 = c * CHUNK, t1 = std::min(a.L, t0 + CHUNK);
        for (int64_t gi = 0; gi < tile.n; ++gi) {
          const bool first = gi == 0;   // the tile's first block writes sB/sC, the others add
          const int64_t blk = tile.blk0 + gi, d0 = tile.d0(gi);
          const int nw = (int)std::min<int64_t>(W, a.D - d0);
          const vf* __restrict__ Ab = &Av[gi * N];
          vf* __restrict__ dh = &dhv[gi * N];
          vf* __restrict__ dAb = &dAv[gi * N];
          const vf Db = Dv[gi], bb = bv[gi];
          vf dDb = dDv[gi], dbb = dbv[gi];
          if (c == 0) std::memcpy(h, &h0v[gi * N], N * sizeof(vf));
          else std::memcpy(h, ckpt + (((b * a.n_blocks + blk) * a.n_chunks) + c - 1) * N * W, N * sizeof(vf));
          // forwards: the states again, and everything that needs h_t but not dL/dh: the output
          // before the gate (for dz), g, dD and dC_t = g h_t
          for (int64_t t = t0; t < t1; ++t) {
            const int64_t k = t - t0, base = (b * a.L + t) * a.D + d0;
            const vf dt = softplus(load_lanes(a.delta + base, nw) + bb);
            const vf x = load_lanes(a.u + base, nw);
            const vf dtx = dt * x;
            dts[k] = dt;
            dtxs[k] = dtx;
            const vf dy = load_lanes(dout + base, nw);      // dL/dy_t
            vf g = dy;
            vf z, sg;
            if (a.has_z) {
              z = load_lanes(a.z_row(b, t, d0), nw);
              sg = sigmoid(z);
              g *= z * sg;                                 // dL/d(output before the gate)
            }
            gs[k] = g;
            dDb += g * x;
            const float* Bt = a.Bm + (b * a.L + t) * a.N;
            const float* Ct = a.Cm + (b * a.L + t) * a.N;
            vf ypre = Db * x;
            vf* sC = &sCv[k * N];
            for (int n = 0; n < N; ++n) {
              const vf e = fast_exp(dt * Ab[n]);
              const vf q = e * h[n];
              h[n] = q + dtx * Bt[n];
              ea[k * N + n] = e;
              qs[k * N + n] = q;
              ypre += h[n] * Ct[n];
              sC[n] = first ? g * h[n] : sC[n] + g * h[n];
            }
            if (a.has_z)   // y = ypre * silu(z): dL/dz = dL/dy * ypre * silu'(z)
              store_lanes(dz + base, nw, dy * ypre * sg * (1.f + z * (1.f - sg)));
          }
          // reverse recurrence, NG state indices at a time so that their dL/dh and dA stay in
          // registers; the sums over n that the gradients of u and dt need are kept per step
          for (int n0 = 0; n0 < N; n0 += NG) {
            vf dhr[NG], dAr[NG];
            for (int j = 0; j < NG; ++j) { dhr[j] = dh[n0 + j]; dAr[j] = dAb[n0 + j]; }
            for (int64_t t = t1 - 1; t >= t0; --t) {
              const int64_t k = t - t0;
              const float* Bt = a.Bm + (b * a.L + t) * a.N + n0;
              const float* Ct = a.Cm + (b * a.L + t) * a.N + n0;
              const vf* q = qs + k * N + n0;
              const vf* e = ea + k * N + n0;
              const vf dt = dts[k], g = gs[k], dtx = dtxs[k];
              vf* sB = &sBv[k * N + n0];
              vf dhB = splat(0.f), dlogA_A = splat(0.f);
#pragma GCC unroll 16
              for (int j = 0; j < NG; ++j) {
                const vf dhn = dhr[j] + g * Ct[j];           // dL/dh_t
                const vf dlogA = dhn * q[j];                 // dL/d(dt A) through exp(dt A) h_{t-1}
                sB[j] = first ? dhn * dtx : sB[j] + dhn * dtx;
                dhB += dhn * Bt[j];
                dlogA_A += dlogA * Ab[n0 + j];
                dAr[j] += dlogA * dt;
                dhr[j] = dhn * e[j];                         // dL/dh_{t-1}
              }
              if (n0 == 0) { dhBs[k] = dhB; dlAs[k] = dlogA_A; }
              else { dhBs[k] += dhB; dlAs[k] += dlogA_A; }
            }
            for (int j = 0; j < NG; ++j) { dh[n0 + j] = dhr[j]; dAb[n0 + j] = dAr[j]; }
          }
          // dt B_t[n] u_t enters h_t: its gradients of u and dt share sum_n dL/dh_t[n] B_t[n]
          for (int64_t t = t0; t < t1; ++t) {
            const int64_t k = t - t0, base = (b * a.L + t) * a.D + d0;
            const vf x = load_lanes(a.u + base, nw);
            const vf draw = (dlAs[k] + dhBs[k] * x) * sigmoid(load_lanes(a.delta + base, nw) + bb);   // softplus' = sigmoid
            dbb += draw;
            store_lanes(ddelta + base, nw, draw);
            store_lanes(du + base, nw, gs[k] * Db + dhBs[k] * dts[k]);
          }
          dDv[gi] = dDb;
          dbv[gi] = dbb;
        }
        for (int64_t t = t0; t < t1; ++t)
          for (int n = 0; n < N; ++n) {
            dBp[t * N + n] = hsum(sBv[(t - t0) * N + n]);
            dCp[t * N + n] = hsum(sCv[(t - t0) * N + n]);
          }
      }
      for (int64_t gi = 0; gi < tile.n; ++gi) {
        const int64_t d0 = tile.d0(gi);
        for (int j = 0; j < std::min<int64_t>(W, a.D - d0); ++j) {
          const int64_t row = b * a.D + d0 + j;
          for (int n = 0; n < N; ++n) {
            dA_part[row * N + n] = dAv[gi * N + n][j];
            dh0[row * N + n] = dhv[gi * N + n][j];
          }
          dD_part[row] = dDv[gi][j];
          dbias_part[row] = dbv[gi][j];
        }
      }
    }
  });
}

static Args make_args(torch::Tensor& u, torch::Tensor& delta, torch::Tensor& A, torch::Tensor& Bm,
                      torch::Tensor& Cm, torch::Tensor& Dv, torch::Tensor& z, torch::Tensor& bias,
                      torch::Tensor& h0, bool has_z, bool has_h0) {
  // shapes are checked here, so a bad call is a Python error, never a crash or a signal (L = 0 would divide by 0)
  TORCH_CHECK(u.dim() == 3 && u.size(0) > 0 && u.size(1) > 0 && u.size(2) > 0,
              "selective scan: u must be a non-empty (B, L, D) tensor, got ", u.sizes());
  TORCH_CHECK(delta.sizes() == u.sizes(), "selective scan: delta ", delta.sizes(), " != u ", u.sizes());
  TORCH_CHECK(A.dim() == 2 && A.size(0) == u.size(2) && A.size(1) > 0, "selective scan: A must be (D, N), got ", A.sizes());
  for (const auto* t : {&Bm, &Cm})
    TORCH_CHECK(t->dim() == 3 && t->size(0) == u.size(0) && t->size(1) == u.size(1) && t->size(2) == A.size(1),
                "selective scan: B and C must be (B, L, N), got ", t->sizes());
  TORCH_CHECK(Dv.numel() == u.size(2) && bias.numel() == u.size(2), "selective scan: D and bias need D entries");
  if (has_h0) TORCH_CHECK(h0.dim() == 3 && h0.size(0) == u.size(0) && h0.size(1) == u.size(2) && h0.size(2) == A.size(1),
                          "selective scan: h0 must be (B, D, N), got ", h0.sizes());
  if (has_z) TORCH_CHECK(z.sizes() == u.sizes(), "selective scan: z ", z.sizes(), " != u ", u.sizes());
  Args a;
  a.Bsz = u.size(0); a.L = u.size(1); a.D = u.size(2); a.N = A.size(1);
  a.n_blocks = (a.D + W - 1) / W; a.n_chunks = (a.L + CHUNK - 1) / CHUNK;
  a.u = u.data_ptr<float>(); a.delta = delta.data_ptr<float>(); a.A = A.data_ptr<float>();
  a.Bm = Bm.data_ptr<float>(); a.Cm = Cm.data_ptr<float>(); a.Dv = Dv.data_ptr<float>();
  a.bias = bias.data_ptr<float>(); a.z = has_z ? z.data_ptr<float>() : nullptr;
  a.h0 = has_h0 ? h0.data_ptr<float>() : nullptr; a.has_z = has_z; a.has_h0 = has_h0;
  if (has_z) TORCH_CHECK(z.dim() == 3 && z.stride(2) == 1, "selective scan: z needs contiguous channels");
  a.z_sb = has_z ? z.stride(0) : 0; a.z_st = has_z ? z.stride(1) : 0;
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

