// The CUDA kernel's work, as a host/device function: the kernel (mix.cu) calls it with its
// blockIdx / threadIdx, and a host harness (tests/kernel_harness.cc) calls it for every block
// and thread in turn, so that the GPU path's indexing is tested on machines without a GPU.
//
// Work decomposition: block (sample, row_block) covers `rows_per_block` consecutive rows of one
// sample (Geometry: row q is image row q % H, with W * inner contiguous elements); the threads of
// a block stride over each row's elements. Where the mask is exactly 1 or 0 only the image that
// is needed is read. Row block 0 also copies the sample's target (and params) row; blocks
// holding image rows (q < H) write the mask when it is requested.

#ifndef DALI_MSDA_CSRC_MIX_KERNEL_H_
#define DALI_MSDA_CSRC_MIX_KERNEL_H_

#include <cstdint>

#include "mask.h"

namespace msda {

template <typename Out, typename In>
struct SampleDesc {
  Out *out;
  const In *self;
  const In *other;
  float *mask;    // nullptr unless output_mask
  float *target;  // output row of K floats
  float *params;  // output row of 4 floats, nullptr unless output_params
  SampleParams p;
};

/// One thread's share of block (sample, row_block): elements thread, thread + nthreads, ...
template <typename Out, typename In>
DALI_HOST_DEV inline void MixBlock(const SampleDesc<Out, In> &s, int sample, int64_t row_block,
                                   int thread, int nthreads, const float *tables,
                                   const float *targets, const float *param_rows,
                                   const Geometry &g, int rows_per_block, int K) {
  const int len = static_cast<int>(g.RowLen());  // W * inner < 2^31 (checked on the host)
  const int64_t q0 = row_block * rows_per_block;
  const int64_t q1 = q0 + rows_per_block < g.Rows() ? q0 + rows_per_block : g.Rows();
  for (int64_t q = q0; q < q1; q++) {
    const int r = q % g.H;
    const int64_t base = q * len;
    for (int e = thread; e < len; e += nthreads) {
      const int c = e / g.inner;
      const float m = MaskAt(s.p, tables, g.H, r, c);
      float v;
      if (m == 1.0f)
        v = LoadIn(s.self[base + e]);
      else if (m == 0.0f)
        v = LoadIn(s.other[base + e]);
      else
        v = Blend(m, LoadIn(s.self[base + e]), LoadIn(s.other[base + e]));
      s.out[base + e] = ConvertOut<Out>(v);
    }
    if (s.mask && q < g.H) {
      for (int c = thread; c < g.W; c += nthreads)
        s.mask[int64_t(r) * g.W + c] = MaskAt(s.p, tables, g.H, r, c);
    }
  }
  if (row_block == 0) {
    const float *target_src = targets + int64_t(sample) * K;
    for (int k = thread; k < K; k += nthreads) s.target[k] = target_src[k];
    if (s.params && thread < 4) s.params[thread] = param_rows[4 * sample + thread];
  }
}

}  // namespace msda

#endif  // DALI_MSDA_CSRC_MIX_KERNEL_H_
