// msda.Mix: CUDA backend and GPU registration.
//
// Work decomposition: ONE kernel launch per batch. blockIdx.y is the sample; blockIdx.x covers
// `rows_per_block` consecutive rows (see Geometry: row q of a sample is image row q % H, with
// W * inner contiguous elements); the threads of a block stride over the elements of each row.
// Every element reads its mask value from the per-sample SampleParams (mask.h, the same code as
// the CPU backend) and, where the mask is exactly 1 or 0, reads only the image it needs.
// Blocks with blockIdx.x == 0 also copy the sample's target (and params) row, and the blocks
// holding image rows (q < H) write the mask when it is requested. All per-sample data (params, pointers,
// targets, GMix tables) is drawn on the host and copied in one transfer per batch.
//
// Compiled with -fmad=false so that the blend is evaluated exactly as on the CPU.

#include <vector>

#include "dali/core/cuda_error.h"
#include "dali/kernels/dynamic_scratchpad.h"

#include "mix.h"

namespace msda {

namespace {

constexpr int kBlockSize = 256;
constexpr int64_t kBlockElems = 8192;  // elements per block, roughly

template <typename Out, typename In>
struct SampleDesc {
  Out *out;
  const In *self;
  const In *other;
  float *mask;          // nullptr unless output_mask
  float *target;        // output row of K floats
  float *params;        // output row of 4 floats, nullptr unless output_params
  SampleParams p;
};

template <typename Out, typename In>
__global__ void MixKernel(const SampleDesc<Out, In> *samples, const float *tables,
                          const float *targets, const float *param_rows, Geometry g,
                          int rows_per_block, int K) {
  const SampleDesc<Out, In> s = samples[blockIdx.y];
  const int len = static_cast<int>(g.RowLen());  // W * inner < 2^31 (checked on the host)
  const int64_t q0 = int64_t(blockIdx.x) * rows_per_block;
  const int64_t q1 = min(q0 + rows_per_block, g.Rows());
  for (int64_t q = q0; q < q1; q++) {
    const int r = q % g.H;
    const int64_t base = q * len;
    for (int e = threadIdx.x; e < len; e += blockDim.x) {
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
      for (int c = threadIdx.x; c < g.W; c += blockDim.x)
        s.mask[int64_t(r) * g.W + c] = MaskAt(s.p, tables, g.H, r, c);
    }
  }
  if (blockIdx.x == 0) {
    const float *target_src = targets + int64_t(blockIdx.y) * K;
    for (int k = threadIdx.x; k < K; k += blockDim.x) s.target[k] = target_src[k];
    if (s.params && threadIdx.x < 4)
      s.params[threadIdx.x] = param_rows[4 * blockIdx.y + threadIdx.x];
  }
}

}  // namespace

template <>
void Mix<GPUBackend>::RunImpl(Workspace &ws) {
  const auto &in = ws.Input<GPUBackend>(0);
  auto &out = ws.Output<GPUBackend>(0);
  const int n = in.num_samples();
  DrawParams(n);
  SetOutputLayouts(ws);
  if (n == 0) return;

  cudaStream_t stream = ws.stream();
  kernels::DynamicScratchpad scratch(stream);  // local: freed in stream order
  auto tv = view<float>(ws.Output<GPUBackend>(1));
  TensorListView<StorageGPU, float> mv, pv;
  if (output_mask_) mv = view<float>(ws.Output<GPUBackend>(MaskOutputIdx()));
  if (output_params_) pv = view<float>(ws.Output<GPUBackend>(ParamsOutputIdx()));
  std::vector<float> param_rows(output_params_ ? 4 * n : 0);
  for (int i = 0; output_params_ && i < n; i++) ParamsRow(i, &param_rows[4 * i]);

  const Geometry g = geom_;
  const int rows_per_block =
      static_cast<int>(std::max<int64_t>(1, kBlockElems / std::max<int64_t>(1, g.RowLen())));
  const int64_t blocks_x = (g.Rows() + rows_per_block - 1) / rows_per_block;
  DALI_ENFORCE(blocks_x <= 0x7fffffff && n <= 65535 && g.RowLen() <= 0x7fffffff,
               make_string("msda.Mix GPU: batch too large for one launch (", n, " samples, ",
                           blocks_x, " row blocks of ", g.RowLen(), " elements each)."));

  TYPE_SWITCH(in.type(), type2id, In, (uint8_t, float16, float), (
    TYPE_SWITCH(out.type(), type2id, Out, (uint8_t, float16, float), (
      auto iv = view<const In>(in);
      auto ov = view<Out>(out);
      std::vector<SampleDesc<Out, In>> descs(n);
      for (int i = 0; i < n; i++) {
        auto &d = descs[i];
        d.out = ov.data[i];
        d.self = iv.data[i];
        d.other = iv.data[params_[i].partner];
        d.mask = output_mask_ ? mv.data[i] : nullptr;
        d.target = tv.data[i];
        d.params = output_params_ ? pv.data[i] : nullptr;
        d.p = params_[i];
      }
      // one host-to-device copy for everything the kernel reads besides the images
      auto [descs_gpu, targets_gpu, tables_gpu, params_gpu] =
          scratch.ToContiguousGPU(stream, descs, targets_, tables_, param_rows);
      dim3 grid(static_cast<unsigned>(blocks_x), n);
      MixKernel<Out, In><<<grid, kBlockSize, 0, stream>>>(
          descs_gpu, tables_gpu, targets_gpu, params_gpu, g, rows_per_block, K_);
      CUDA_CALL(cudaGetLastError());
    ), DALI_FAIL(make_string("Unsupported output type ", out.type(), ".")));  // NOLINT
  ), DALI_FAIL(make_string("Unsupported input type ", in.type(), ".")));  // NOLINT
}

}  // namespace msda

DALI_REGISTER_OPERATOR(msda__Mix, ::msda::Mix<::dali::GPUBackend>, ::dali::GPU);
