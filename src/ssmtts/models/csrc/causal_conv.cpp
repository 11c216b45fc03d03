// Causal depthwise convolution along time, with the bias and an optional SiLU or GELU fused (CPU, float32).
//
//   xp = [prefix ; x]  (B, K-1+L, C)     pre[b, t, c] = bias[c] + sum_k w[c, k] xp[b, t+k, c]
//   y = act(pre), act = none | silu | gelu (0, 1, 2)    (B, L, C), contiguous
//
// In PyTorch ops this is a concatenation, K shifted products, K-1 sums, the bias and the SiLU:
// ~2K+3 passes over a (B, L, C) tensor forward and as many backward, each allocating a new one.
// Here it is one pass each way. Tasks are (batch, group of channel blocks) as in the selective scan;
// x may be a strided view (the in_proj output split in two) as long as channels are contiguous.
// The backward recomputes `pre` instead of saving it. Weight and bias gradients are kept per
// batch row and summed afterwards in a fixed order (no dependence on the thread count).
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <vector>

#include "simd.h"

struct ConvArgs {
  int64_t Bsz, L, C, K, sb, st;   // x strides: batch, time (channels are contiguous)
  const float *x, *w, *bias, *prefix;
  bool has_prefix;
  int64_t act;   // 0 none, 1 SiLU, 2 GELU
};

static ConvArgs conv_args(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias,
                          const torch::Tensor& prefix, bool has_prefix, int64_t act) {
  TORCH_CHECK(act >= 0 && act <= 2, "causal_conv: activation code must be 0 (none), 1 (SiLU) or 2 (GELU)");
  TORCH_CHECK(x.dim() == 3 && x.stride(2) == 1, "causal_conv: x must be (B, L, C) with contiguous channels");
  TORCH_CHECK(x.scalar_type() == torch::kFloat32, "causal_conv: float32 only");
  TORCH_CHECK(x.size(0) > 0 && x.size(1) > 0 && x.size(2) > 0, "causal_conv: empty input ", x.sizes());
  TORCH_CHECK(w.dim() == 2 && w.size(0) == x.size(2) && w.size(1) > 0, "causal_conv: w must be (C, K), got ", w.sizes());
  TORCH_CHECK(bias.numel() == x.size(2), "causal_conv: bias needs C = ", x.size(2), " entries");
  if (has_prefix) TORCH_CHECK(prefix.dim() == 3 && prefix.size(0) == x.size(0) && prefix.size(1) == w.size(1) - 1 &&
                              prefix.size(2) == x.size(2), "causal_conv: prefix must be (B, K-1, C), got ", prefix.sizes());
  ConvArgs a;
  a.Bsz = x.size(0); a.L = x.size(1); a.C = x.size(2); a.K = w.size(1);
  a.sb = x.stride(0); a.st = x.stride(1);
  a.x = x.data_ptr<float>(); a.w = w.data_ptr<float>(); a.bias = bias.data_ptr<float>();
  a.prefix = has_prefix ? prefix.data_ptr<float>() : nullptr;
  a.has_prefix = has_prefix; a.act = act;
  return a;
}

// xp[b, s, c0..c0+W) for s in [0, K-1+L): the prefix (or zeros) before x.
static inline vf xp_row(const ConvArgs& a, int64_t b, int64_t s, int64_t c0, int nw) {
  const int64_t t = s - (a.K - 1);
  if (t >= 0) return load_lanes(a.x + b * a.sb + t * a.st + c0, nw);
  if (!a.has_prefix) return splat(0.f);
  return load_lanes(a.prefix + (b * (a.K - 1) + s) * a.C + c0, nw);
}

static inline void load_taps(const ConvArgs& a, int64_t c0, int nw, vf* wk, vf& bb) {
  bb = load_lanes(a.bias + c0, nw);
  for (int64_t k = 0; k < a.K; ++k) {
    wk[k] = splat(0.f);
    for (int j = 0; j < nw; ++j) wk[k][j] = a.w[(c0 + j) * a.K + k];
  }
}

static inline vf pre_at(const ConvArgs& a, const vf* wk, vf bb, int64_t b, int64_t t, int64_t c0, int nw) {
  vf pre = bb;
  for (int64_t k = 0; k < a.K; ++k) pre += wk[k] * xp_row(a, b, t + k, c0, nw);
  return pre;
}

// Tasks are (batch, group of GROUP blocks of W channels); each step t runs over the whole group,
// so a row is read as GROUP * W contiguous floats rather than W scattered ones.
static constexpr int64_t GROUP = 8;

// One task's blocks (batch row b, blocks blk0 .. blk0+ng-1), with their taps and biases loaded.
struct ConvTile {
  int64_t b, blk0, ng;
  ConvTile(const ConvArgs& a, int64_t task, int64_t n_groups, int64_t n_blocks, vf* wk, vf* bb)
      : b(task / n_groups), blk0((task % n_groups) * GROUP), ng(std::min(GROUP, n_blocks - blk0)) {
    for (int64_t gi = 0; gi < ng; ++gi) {
      const int64_t c0 = (blk0 + gi) * W;
      load_taps(a, c0, (int)std::min<int64_t>(W, a.C - c0), &wk[gi * a.K], bb[gi]);
    }
  }
};

torch::Tensor conv_fwd(torch::Tensor x, torch::Tensor w, torch::Tensor bias, torch::Tensor prefix,
                       bool has_prefix, int64_t act) {
  const ConvArgs a = conv_args(x, w, bias, prefix, has_prefix, act);
  auto y = torch::empty({a.Bsz, a.L, a.C}, x.options());
  float* yp = y.data_ptr<float>();
  const int64_t n_blocks = (a.C + W - 1) / W, n_groups = (n_blocks + GROUP - 1) / GROUP, K = a.K;
  at::parallel_for(0, a.Bsz * n_groups, grain_for(a.L * GROUP * W), [&](int64_t begin, int64_t end) {
    std::vector<vf> wk(GROUP * K), bb(GROUP);
    for (int64_t task = begin; task < end; ++task) {
      const ConvTile tile(a, task, n_groups, n_blocks, wk.data(), bb.data());
      const int64_t b = tile.b, blk0 = tile.blk0, ng = tile.ng;
      for (int64_t t = 0; t < a.L; ++t)
        for (int64_t gi = 0; gi < ng; ++gi) {
          const int64_t c0 = (blk0 + gi) * W;
          const int nw = (int)std::min<int64_t>(W, a.C - c0);
          const vf pre = pre_at(a, &wk[gi * K], bb[gi], b, t, c0, nw);
          store_lanes(yp + (b * a.L + t) * a.C + c0, nw, a.act == 1 ? pre * sigmoid(pre) : a.act == 2 ? gelu(pre) : pre);
        }
    }
  });
  return y;
}

// Returns dx (B, L, C), dprefix (B, K-1, C) (empty without a prefix), dw (C, K), dbias (C).
std::vector<torch::Tensor> conv_bwd(torch::Tensor x, torch::Tensor w, torch::Tensor bias, torch::Tensor prefix,
                                    torch::Tensor dy, bool has_prefix, int64_t act) {
  const ConvArgs a = conv_args(x, w, bias, prefix, has_prefix, act);
  dy = dy.contiguous();
  const float* dyp = dy.data_ptr<float>();
  auto dx = torch::empty({a.Bsz, a.L, a.C}, x.options());
  auto dprefix = has_prefix ? torch::zeros({a.Bsz, a.K - 1, a.C}, x.options()) : torch::zeros({0}, x.options());
  auto dw_part = torch::empty({a.Bsz, a.C, a.K}, x.options());
  auto db_part = torch::empty({a.Bsz, a.C}, x.options());
  float *dxp = dx.data_ptr<float>(), *dwp = dw_part.data_ptr<float>(), *dbp = db_part.data_ptr<float>();
  float* dpp = has_prefix ? dprefix.data_ptr<float>() : nullptr;
  const int64_t n_blocks = (a.C + W - 1) / W, n_groups = (n_blocks + GROUP - 1) / GROUP, K = a.K;
  at::parallel_for(0, a.Bsz * n_groups, grain_for(a.L * GROUP * W), [&](int64_t begin, int64_t end) {
    // per block of the group: taps, bias, their gradients, and ring[t % K] = g_t (gradient at pre[t])
    std::vector<vf> wk(GROUP * K), dwk(GROUP * K), ring(GROUP * K), bb(GROUP), db(GROUP), xr(K);
    for (int64_t task = begin; task < end; ++task) {
      const ConvTile tile(a, task, n_groups, n_blocks, wk.data(), bb.data());
      const int64_t b = tile.b, blk0 = tile.blk0, ng = tile.ng;
      for (int64_t gi = 0; gi < ng; ++gi) {
        db[gi] = splat(0.f);
        for (int64_t k = 0; k < K; ++k) { dwk[gi * K + k] = splat(0.f); ring[gi * K + k] = splat(0.f); }
      }
      // Backwards in time: x[t] (= xp[t + K-1]) feeds pre[t .. t+K-1] through taps K-1 .. 0.
      for (int64_t t = a.L - 1; t >= 0; --t)
        for (int64_t gi = 0; gi < ng; ++gi) {
          const int64_t c0 = (blk0 + gi) * W;
          const int nw = (int)std::min<int64_t>(W, a.C - c0);
          const vf* wg = &wk[gi * K];
          vf* rg = &ring[gi * K];
          vf* dwg = &dwk[gi * K];
          for (int64_t k = 0; k < K; ++k) xr[k] = xp_row(a, b, t + k, c0, nw);
          vf g = load_lanes(dyp + (b * a.L + t) * a.C + c0, nw);
          if (a.act) {
            vf pre = bb[gi];
            for (int64_t k = 0; k < K; ++k) pre += wg[k] * xr[k];
            if (a.act == 1) {
              const vf sg = sigmoid(pre);
              g *= sg * (1.f + pre * (1.f - sg));
            } else {
              g *= gelu_grad(pre);
            }
          }
          rg[t % K] = g;
          db[gi] += g;
          for (int64_t k = 0; k < K; ++k) dwg[k] += g * xr[k];
          vf d = splat(0.f);
          for (int64_t k = 0; k < K; ++k)
            if (t + K - 1 - k < a.L) d += wg[k] * rg[(t + K - 1 - k) % K];
          store_lanes(dxp + (b * a.L + t) * a.C + c0, nw, d);
        }
      for (int64_t gi = 0; gi < ng; ++gi) {
        const int64_t c0 = (blk0 + gi) * W;
        const int nw = (int)std::min<int64_t>(W, a.C - c0);
        const vf* wg = &wk[gi * K];
        const vf* rg = &ring[gi * K];
        if (has_prefix)   // prefix row p (= xp[p]) feeds pre[0 .. p] through taps p .. 0
          for (int64_t p = 0; p < K - 1; ++p) {
            vf d = splat(0.f);
            for (int64_t k = 0; k <= p; ++k)
              if (p - k < a.L) d += wg[k] * rg[(p - k) % K];
            store_lanes(dpp + (b * (K - 1) + p) * a.C + c0, nw, d);
          }
        for (int j = 0; j < nw; ++j) {
          for (int64_t k = 0; k < K; ++k) dwp[(b * a.C + c0 + j) * K + k] = dwk[gi * K + k][j];
          dbp[b * a.C + c0 + j] = db[gi][j];
        }
      }
    }
  });
  return {dx, dprefix, dw_part.sum(0), db_part.sum(0)};
}
