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
                       bool has_prefix, bool silu);
std::vector<torch::Tensor> conv_bwd(torch::Tensor x, torch::Tensor w, torch::Tensor bias, torch::Tensor prefix,
                                    torch::Tensor dy, bool has_prefix, bool silu);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.attr("lanes") = W;   // SIMD width the kernels were built for (16 with AVX-512, else 8)
  m.def("step", &state_step, "one-frame selective state update, in place (CPU)");
  m.def("fwd", &scan_fwd, "selective scan forward (CPU)");
  m.def("bwd", &scan_bwd, "selective scan backward (CPU)");
  m.def("conv_fwd", &conv_fwd, "causal depthwise conv + bias (+ SiLU), forward (CPU)");
  m.def("conv_bwd", &conv_bwd, "causal depthwise conv + bias (+ SiLU), backward (CPU)");
}
