// Python bindings of the CPU kernels (one extension, built by models/cpu_ext.py).
#include <torch/extension.h>
#include <vector>

#include "simd.h"

std::vector<torch::Tensor> scan_fwd(torch::Tensor u, torch::Tensor delta, torch::Tensor A, torch::Tensor Bm,
                                    torch::Tensor Cm, torch::Tensor Dv, torch::Tensor z, torch::Tensor bias,
                                    torch::Tensor h0, bool has_z, bool has_h0);
std::vector<torch::Tensor> scan_bwd(torch::Tensor u, torch::Tensor delta, torch::Tensor A, torch::Tensor Bm,
                                    torch::Tensor Cm, torch::Tensor Dv, torch::Tensor z, torch::Tensor bias,
                                    torch::Tensor h0, torch::Tensor ckpt, torch::Tensor dout,
                                    torch::Tensor dh_last, bool has_z, bool has_h0);
torch::Tensor state_step(torch::Tensor state, torch::Tensor x, torch::Tensor dt, torch::Tensor A, torch::Tensor Bm,
                         torch::Tensor Cm, torch::Tensor Dv, torch::Tensor z, torch::Tensor bias, bool has_z);
torch::Tensor conv_fwd(torch::Tensor x, torch::Tensor w, torch::Tensor bias, torch::Tensor prefix,
                       bool has_prefix, int64_t act);
std::vector<torch::Tensor> conv_bwd(torch::Tensor x, torch::Tensor w, torch::Tensor bias, torch::Tensor prefix,
                                    torch::Tensor dy, bool has_prefix, int64_t act);
std::vector<torch::Tensor> group_xent(torch::Tensor z, torch::Tensor target, torch::Tensor w, int64_t groups,
                                      bool grad, torch::Tensor bias);

// The kernels' inline exp applied to a float32 tensor, lane by lane: for its accuracy test.
static torch::Tensor inline_exp(torch::Tensor x) {
  TORCH_CHECK(x.scalar_type() == torch::kFloat32, "inline_exp: float32 input");
  auto xc = x.contiguous();
  auto y = torch::empty_like(xc);
  const float* xp = xc.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  for (int64_t i = 0; i < xc.numel(); i += W) {
    const int nw = (int)std::min<int64_t>(W, xc.numel() - i);
    store_lanes(yp + i, nw, fast_exp(load_lanes(xp + i, nw)));
  }
  return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.attr("lanes") = W;   // SIMD width the kernels were built for (16 with AVX-512, else 8)
  m.def("step", &state_step, "one-frame selective state update, in place (CPU)");
  m.def("fwd", &scan_fwd, "selective scan forward (CPU)");
  m.def("bwd", &scan_bwd, "selective scan backward (CPU)");
  m.def("conv_fwd", &conv_fwd, "causal depthwise conv + bias (+ SiLU or GELU), forward (CPU)");
  m.def("inline_exp", &inline_exp, "the kernels' inline exp, lane by lane (for tests)");
  m.def("conv_bwd", &conv_bwd, "causal depthwise conv + bias (+ SiLU or GELU), backward (CPU)");
  m.def("group_xent", &group_xent, "cross-entropy over groups of logits, gradient in place (CPU)");
}
