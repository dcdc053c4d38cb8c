// msda.Mix: CUDA backend and GPU registration.
//
// ONE kernel launch per batch: blockIdx.y is the sample, blockIdx.x a run of tiles of it. The
// work of a block is in kernel.h (StageTile, ComputeTile, WriteTargets: host/device, so that a
// host harness runs it too), and so is the host-side planning (PlanTiles, BuildDescs,
// KernelArgs). What is left here is only GPU plumbing: one upload of everything the kernel
// reads besides the images, and the launch.
//
// Compiled with -fmad=false so that every value is computed exactly as on the CPU.

#include <vector>

#include "dali/core/cuda_error.h"
#include "dali/kernels/dynamic_scratchpad.h"

#include "kernel.h"
#include "mix.h"

namespace msda {

namespace {

template <typename Out, typename In>
__global__ void __launch_bounds__(kBlockThreads) MixKernel(const KernelArgs<Out, In> args) {
  extern __shared__ __align__(16) unsigned char smem[];
  In *stage = reinterpret_cast<In *>(smem);
  const SampleDesc<Out, In> s = args.samples[blockIdx.y];
  int64_t t0, t1;
  BlockTiles(args.g, blockIdx.x, &t0, &t1);
  for (int64_t t = t0; t < t1; t++) {
    StageTile(s, args.g, t, stage, threadIdx.x, blockDim.x);
    __syncthreads();
    ComputeTile(s, args.g, t, stage, args.tables, args.norm, threadIdx.x, blockDim.x);
    __syncthreads();
  }
  if (blockIdx.x == 0)
    WriteTargets(s, blockIdx.y, args.g, args.soft, args.param_rows, threadIdx.x, blockDim.x);
}

}  // namespace

template <>
void Mix<GPUBackend>::RunImpl(Workspace &ws) {
  const auto &in = ws.Input<GPUBackend>(0);
  auto &out = ws.Output<GPUBackend>(0);
  const int n = in.num_samples();
  DrawParams(n);
  BuildFMixMasks(ws);
  SetOutputLayouts(ws);
  if (n == 0) return;

  const int in_bytes = static_cast<int>(in.type_info().size());
  const TileGeometry g = Tiles(in_bytes);
  const int64_t stage_bytes = StageBytes(g, in_bytes);
  const int64_t grid_x = GridX(g);
  MSDA_ENFORCE(stage_bytes <= kMaxStageBytes && grid_x <= 0x7fffffff && n <= 65535,
               make_string("msda.Mix GPU: this batch does not fit one launch (", n,
                           " samples of shape ", detail::ShapeStr(in.shape()[0]), "): at most "
                           "65535 samples and, for planar layouts, a few hundred channels."));

  cudaStream_t stream = ws.stream();
  kernels::DynamicScratchpad scratch(stream);  // local: freed in stream order
  auto tv = view<float>(ws.Output<GPUBackend>(1));
  TensorListView<StorageGPU, float> mv, pv;
  if (output_mask_) mv = view<float>(ws.Output<GPUBackend>(MaskOutputIdx()));
  if (output_params_) pv = view<float>(ws.Output<GPUBackend>(ParamsOutputIdx()));
  std::vector<float> param_rows(output_params_ ? 4 * n : 0);
  for (int i = 0; output_params_ && i < n; i++) ParamsRow(i, &param_rows[4 * i]);

  TYPE_SWITCH(in.type(), type2id, In, (uint8_t, float16, float), (
    TYPE_SWITCH(out.type(), type2id, Out, (uint8_t, float16, float), (
      auto iv = view<const In>(in);
      auto ov = view<Out>(out);
      std::vector<SampleDesc<Out, In>> descs(n);
      BuildDescs<Out, In>(n, ov.data.data(), iv.data.data(),
                          output_mask_ ? mv.data.data() : nullptr, tv.data.data(),
                          output_params_ ? pv.data.data() : nullptr, params_.data(),
                          target_specs_.data(), mirror_.data(), descs.data());
      // one host-to-device copy for everything the kernel reads besides the images
      auto [descs_gpu, tables_gpu, norm_gpu, soft_gpu, params_gpu] =
          scratch.ToContiguousGPU(stream, descs, tables_, norm_, soft_targets_, param_rows);
      const KernelArgs<Out, In> args{.samples = descs_gpu, .tables = tables_gpu,
                                     .norm = norm_gpu, .soft = soft_gpu,
                                     .param_rows = params_gpu, .g = g};
      dim3 grid(static_cast<unsigned>(grid_x), n);
      MixKernel<Out, In><<<grid, kBlockThreads, stage_bytes, stream>>>(args);
      CUDA_CALL(cudaGetLastError());
    ), DALI_FAIL(make_string("Unsupported output type ", out.type(), ".")));  // NOLINT
  ), DALI_FAIL(make_string("Unsupported input type ", in.type(), ".")));  // NOLINT
}

}  // namespace msda

DALI_REGISTER_OPERATOR(msda__Mix, ::msda::Mix<::dali::GPUBackend>, ::dali::GPU);
