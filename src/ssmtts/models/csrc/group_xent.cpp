// Cross-entropy over groups of K logits, in place (CPU, float32): the 8-codebook head's loss
// (models/heads.py).
//
//   z (N, G*K) logits, rows contiguous; target (N, G) int64 in [0, K); w (N,) row weights
//   ce[n, g]  = logsumexp(z[n, g, :]) - z[n, g, target[n, g]]            (returned, (N, G))
//   grad:      z[n, g, :] <- w[n] * (softmax(z[n, g, :]) - onehot(target[n, g]))   (dloss/dz)
//   no grad:   argmax[n, g] = first index of the largest z[n, g, :]        (returned, (N, G))
//   bias (G*K,) or empty: the logits are z + bias (added as they are read, so that the head's matmul
//   need not first copy the bias into every row of its output); with grad and a bias, the bias'
//   gradient sum_n z[n, :] is returned too, summed while each group is in L1 (no 50 MB re-read).
//
// In PyTorch ops the same is a permuted copy of z, log-softmax writing a second (N, G*K)
// tensor, and its backward reading both: five passes over 50 MB at a cpu-profile step, each
// with a full-range libm-grade exp. Here each group of K = 1024 floats (4 KB, in L1) is read
// for its max, exponentiated once (the inline exp of simd.h) and scaled in place: three passes
// over L1-resident data. Tasks are blocks of ROWS_PER_TASK rows; each block sums its bias gradient
// into its own partial row, and the partials are added in block order, so no result depends on the
// thread count.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <limits>
#include <vector>

#include "simd.h"

std::vector<torch::Tensor> group_xent(torch::Tensor z, torch::Tensor target, torch::Tensor w, int64_t groups,
                                      bool grad, torch::Tensor bias) {
  TORCH_CHECK(z.dim() == 2 && z.is_contiguous() && z.scalar_type() == torch::kFloat32,
              "group_xent: z must be a contiguous float32 (N, G*K) tensor");
  const int64_t N = z.size(0), G = groups;
  TORCH_CHECK(G > 0 && z.size(1) % G == 0, "group_xent: ", z.size(1), " logits per row are not ", G, " groups");
  const int64_t K = z.size(1) / G;
  TORCH_CHECK(target.dim() == 2 && target.size(0) == N && target.size(1) == G && target.is_contiguous() &&
              target.scalar_type() == torch::kInt64, "group_xent: target must be contiguous int64 (N, G)");
  TORCH_CHECK(w.dim() == 1 && w.size(0) == N && w.is_contiguous() && w.scalar_type() == torch::kFloat32,
              "group_xent: w must be contiguous float32 (N,)");
  const bool has_bias = bias.numel() > 0;
  TORCH_CHECK(!has_bias || (bias.dim() == 1 && bias.size(0) == G * K && bias.is_contiguous() &&
                            bias.scalar_type() == torch::kFloat32), "group_xent: bias must be contiguous float32 (G*K,)");
  constexpr int64_t ROWS_PER_TASK = 16;
  const int64_t n_blocks = (N + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
  const bool want_db = grad && has_bias;
  auto partial = torch::zeros({want_db ? n_blocks : 0, G * K}, z.options());
  float* pp = want_db ? partial.data_ptr<float>() : nullptr;
  const float* bp = has_bias ? bias.data_ptr<float>() : nullptr;
  auto ce = torch::empty({N, G}, z.options());
  auto arg = torch::empty({grad ? 0 : N, G}, target.options());
  float* zp = z.data_ptr<float>();
  const int64_t* tp = target.data_ptr<int64_t>();
  const float* wp = w.data_ptr<float>();
  float* cp = ce.data_ptr<float>();
  int64_t* ap = grad ? nullptr : arg.data_ptr<int64_t>();
  const int64_t KV = K - K % W;   // vectorised part of a group; the tail (K % W) is scalar
  bool bad_target = false;

  const int64_t grain = std::max<int64_t>(1, grain_for(K) / (ROWS_PER_TASK * G));
  at::parallel_for(0, n_blocks, grain, [&](int64_t block_begin, int64_t block_end) {
   for (int64_t blk = block_begin; blk < block_end; ++blk) {
    float* db = want_db ? pp + blk * G * K : nullptr;     // this block's partial bias gradient
    const int64_t i_end = std::min(N, (blk + 1) * ROWS_PER_TASK) * G;
    for (int64_t i = blk * ROWS_PER_TASK * G; i < i_end; ++i) {
      float* x = zp + i * K;
      const float* b = has_bias ? bp + (i % G) * K : nullptr;
      const int64_t t = tp[i];
      if (t < 0 || t >= K) { bad_target = true; continue; }
      if (b) {   // the logits are x + b: add the bias in place (the group is about to be in L1 anyway)
        for (int64_t k = 0; k < KV; k += W) storev(x + k, loadv(x + k) + loadv(b + k));
        for (int64_t k = KV; k < K; ++k) x[k] += b[k];
      }
      // pass 1: max
      vf mv = splat(-std::numeric_limits<float>::infinity());
      for (int64_t k = 0; k < KV; k += W) mv = vmax(mv, loadv(x + k));
      float m = -std::numeric_limits<float>::infinity();
      for (int j = 0; j < W; ++j) m = std::max(m, mv[j]);
      for (int64_t k = KV; k < K; ++k) m = std::max(m, x[k]);
      const float picked = x[t];
      if (!grad) {   // first index of the max, as torch.argmax
        int64_t k = 0;
        while (k < K && x[k] != m) ++k;
        ap[i] = k;
      }
      // pass 2: e = exp(x - m), summed (stored in place when the gradient is wanted)
      vf sv = splat(0.f);
      const vf mm = splat(m);
      for (int64_t k = 0; k < KV; k += W) {
        const vf e = fast_exp(loadv(x + k) - mm);
        sv += e;
        if (grad) storev(x + k, e);
      }
      float s = hsum(sv);
      for (int64_t k = KV; k < K; ++k) {
        const float e = fast_exp(splat(x[k] - m))[0];
        s += e;
        if (grad) x[k] = e;
      }
      cp[i] = m + std::log(s) - picked;
      if (grad) {   // pass 3: w (p - onehot)
        const float wn = wp[i / G], scale = wn / s;
        const vf sc = splat(scale);
        for (int64_t k = 0; k < KV; k += W) storev(x + k, loadv(x + k) * sc);
        for (int64_t k = KV; k < K; ++k) x[k] *= scale;
        x[t] -= wn;
        if (db) {
          float* d = db + (i % G) * K;
          for (int64_t k = 0; k < KV; k += W) storev(d + k, loadv(d + k) + loadv(x + k));
          for (int64_t k = KV; k < K; ++k) d[k] += x[k];
        }
      }
    }
   }
  });
  TORCH_CHECK(!bad_target, "group_xent: a target id is outside [0, ", K, ")");
  auto dbias = torch::zeros({want_db ? G * K : 0}, z.options());
  if (want_db) {   // blocks in order: the same sum whatever the thread count
    float* out = dbias.data_ptr<float>();
    at::parallel_for(0, G * K, 1024, [&](int64_t c0, int64_t c1) {
      for (int64_t blk = 0; blk < n_blocks; ++blk)
        for (int64_t c = c0; c < c1; ++c) out[c] += pp[blk * G * K + c];
    });
  }
  return {ce, arg, dbias};
}
