// Host harness for the CUDA kernel's work (dali_msda/csrc/mix/kernel.h): runs MixBlock for every
// block and thread of the launch that mix.cu would make, sequentially, on the CPU. Built and
// called through ctypes by tests/test_kernel_emulation.py; with PlanSample / SoftTarget it takes
// the same path from draws to outputs as the GPU backend, minus the CUDA runtime.

#include <cstdint>
#include <vector>

#include "mix/kernel.h"
#include "mix/params.h"

namespace {

template <typename Out, typename In>
void Emulate(int method, int n, int64_t outer, int H, int W, int inner, const void *images,
             void *out, float *masks, float *targets_out, const float *lam, const int *cy,
             const int *cx, const unsigned char *apply, const float *labels, int K, float eps,
             float hmix_ratio, int correct_lam, int rows_per_block, int nthreads) {
  using namespace msda;  // NOLINT
  Geometry g;
  g.outer = outer;
  g.H = H;
  g.W = W;
  g.inner = inner;
  const int64_t volume = g.Rows() * g.RowLen();
  std::vector<float> tables(int64_t(n) * (H + W)), targets(int64_t(n) * K);
  std::vector<SampleDesc<Out, In>> descs(n);
  const In *in = static_cast<const In *>(images);
  Out *o = static_cast<Out *>(out);
  for (int i = 0; i < n; i++) {
    Draw d{apply[i] != 0, lam[i], cy[i], cx[i]};
    double w;
    SampleParams p = PlanSample(static_cast<Method>(method), d, i, n, hmix_ratio, correct_lam,
                                H, W, tables.data() + int64_t(i) * (H + W), i * (H + W), &w);
    SoftTarget(w, labels + int64_t(i) * K, labels + int64_t(p.partner == i ? i : n - 1 - i) * K,
               K, eps, targets.data() + int64_t(i) * K);
    descs[i] = {o + i * volume, in + i * volume, in + int64_t(p.partner) * volume,
                masks ? masks + int64_t(i) * H * W : nullptr, targets_out + int64_t(i) * K,
                nullptr, p};
  }
  const int64_t blocks = (g.Rows() + rows_per_block - 1) / rows_per_block;
  for (int s = 0; s < n; s++)
    for (int64_t b = 0; b < blocks; b++)
      for (int t = 0; t < nthreads; t++)
        MixBlock(descs[s], s, b, t, nthreads, tables.data(), targets.data(), nullptr, g,
                 rows_per_block, K);
}

template <typename Out>
int DispatchIn(int in_type, int method, int n, int64_t outer, int H, int W, int inner,
               const void *images, void *out, float *masks, float *targets_out, const float *lam,
               const int *cy, const int *cx, const unsigned char *apply, const float *labels,
               int K, float eps, float hmix_ratio, int correct_lam, int rows_per_block,
               int nthreads) {
#define MSDA_EMULATE(In)                                                                    \
  Emulate<Out, In>(method, n, outer, H, W, inner, images, out, masks, targets_out, lam, cy,  \
                   cx, apply, labels, K, eps, hmix_ratio, correct_lam, rows_per_block,       \
                   nthreads)
  switch (in_type) {
    case 0: MSDA_EMULATE(uint8_t); return 0;
    case 1: MSDA_EMULATE(dali::float16); return 0;
    case 2: MSDA_EMULATE(float); return 0;
    default: return -1;
  }
#undef MSDA_EMULATE
}

}  // namespace

/// Types: 0 uint8, 1 float16, 2 float32. Images are n contiguous samples; returns 0 on success.
extern "C" int msda_emulate_kernel(int in_type, int out_type, int method, int n,
                                   int64_t outer, int H, int W, int inner, const void *images,
                                   void *out, float *masks, float *targets_out, const float *lam,
                                   const int *cy, const int *cx, const unsigned char *apply,
                                   const float *labels, int K, float eps, float hmix_ratio,
                                   int correct_lam, int rows_per_block, int nthreads) {
  switch (out_type) {
    case 0: return DispatchIn<uint8_t>(in_type, method, n, outer, H, W, inner, images, out,
                                       masks, targets_out, lam, cy, cx, apply, labels, K, eps,
                                       hmix_ratio, correct_lam, rows_per_block, nthreads);
    case 1: return DispatchIn<dali::float16>(in_type, method, n, outer, H, W, inner, images,
                                             out, masks, targets_out, lam, cy, cx, apply, labels,
                                             K, eps, hmix_ratio, correct_lam, rows_per_block,
                                             nthreads);
    case 2: return DispatchIn<float>(in_type, method, n, outer, H, W, inner, images, out, masks,
                                     targets_out, lam, cy, cx, apply, labels, K, eps,
                                     hmix_ratio, correct_lam, rows_per_block, nthreads);
    default: return -1;
  }
}
