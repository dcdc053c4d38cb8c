// msda.Mix: CUDA backend and GPU registration.
//
// ONE kernel launch per batch: blockIdx.y is the sample, blockIdx.x a block of rows; the work of
// a block is MixBlock() in kernel.h (host/device, so that a host harness tests it too). All
// per-sample data (params, pointers, targets, GMix tables) is drawn on the host and copied in
// one transfer per batch.
//
// Compiled with -fmad=false so that the blend is evaluated exactly as on the CPU.

#include <vector>

#include "dali/core/cuda_error.h"
#include "dali/kernels/dynamic_scratchpad.h"

#include "kernel.h"
#include "mix.h"

namespace msda {

namespace {

constexpr int kBlockSize = 256;
constexpr int64_t kBlockElems = 8192;  // elements per block, roughly

template <typename Out, typename In>
__global__ void MixKernel(const SampleDesc<Out, In> *samples, const float *tables,
                          const float *targets, const float *param_rows, Geometry g,
                          int rows_per_block, int K) {
  const SampleDesc<Out, In> s = samples[blockIdx.y];
  MixBlock(s, blockIdx.y, blockIdx.x, threadIdx.x, blockDim.x, tables, targets, param_rows, g,
           rows_per_block, K);
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
