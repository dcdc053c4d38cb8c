// msda.Mix: CUDA backend and GPU registration.
//
// ONE kernel launch per batch over a persistent grid (the device's resident blocks, or fewer for
// a small batch). The work of a thread is MixThread (kernel.h: host/device, so that a host
// harness runs every thread of the same launch), and the host-side planning is launch.h
// (PlanLaunch, BuildDescs, KernelArgs), shared with that harness. What is left here is only GPU
// plumbing: the device's SM count and occupancy, the read-back of ClassMix's maps, one upload of
// everything the kernel reads besides the images, and the launch.
//
// Compiled with -fmad=false so that every value is computed exactly as on the CPU.

#include <cstring>
#include <mutex>
#include <optional>
#include <type_traits>
#include <vector>

#include "dali/core/cuda_error.h"
#include "dali/kernels/dynamic_scratchpad.h"

#include "kernel.h"
#include "mix.h"

namespace msda {

namespace {

template <int C, int kPlain, typename Out, typename In>
__global__ void __launch_bounds__(kBlockThreads, kMinBlocks)
    MixKernel(const KernelArgs<Out, In> args) {
  MixThread<C, kPlain>(args, blockIdx.x, threadIdx.x);
}

/// SMs of the current device and resident MixKernel<C, kPlain, Out, In> blocks per SM (asked
/// once per device and kernel instance).
template <int C, int kPlain, typename Out, typename In>
void DeviceSlots(int *sms, int *blocks_per_sm) {
  struct Slots {
    int sms = -1, blocks = 0;
  };
  static Slots cache[64];
  static std::mutex lock;  // pipelines on several threads may launch at once
  int dev = 0;
  CUDA_CALL(cudaGetDevice(&dev));
  std::lock_guard<std::mutex> guard(lock);
  Slots &s = cache[dev & 63];
  if (s.sms < 0) {
    CUDA_CALL(cudaDeviceGetAttribute(&s.sms, cudaDevAttrMultiProcessorCount, dev));
    CUDA_CALL(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        &s.blocks, MixKernel<C, kPlain, Out, In>, kBlockThreads, 0));
  }
  *sms = s.sms;
  *blocks_per_sm = s.blocks;
}

/// ClassMix makes its masks on the host from the partners' maps: only those are read back, into
/// pinned memory, the copies issued at once so that they run while FMix's masks are made (the
/// caller synchronises before it reads them; a device-side class count would avoid that).
class PartnerMaps {
 public:
  PartnerMaps(const TensorList<GPUBackend> &maps, const std::vector<HostMaskJob> &jobs, int n,
              kernels::DynamicScratchpad &scratch, cudaStream_t stream)
      : slot_(n, -1) {
    bytes_ = volume(maps.tensor_shape(jobs[0].partner)) * maps.type_info().size();
    host_ = scratch.AllocatePinned<uint8_t>(jobs.size() * bytes_);
    int slots = 0;
    for (const HostMaskJob &job : jobs) {
      int &slot = slot_[job.partner];
      if (slot >= 0) continue;
      slot = slots++;
      CUDA_CALL(cudaMemcpyAsync(host_ + slot * bytes_, maps.raw_tensor(job.partner), bytes_,
                                cudaMemcpyDeviceToHost, stream));
    }
  }
  /// Sample j's map in host memory (j a partner of a job).
  const void *Of(int j) const { return host_ + slot_[j] * bytes_; }

 private:
  std::vector<int> slot_;  // per sample: its map's place in host_, or -1
  uint8_t *host_ = nullptr;
  int64_t bytes_ = 0;
};

}  // namespace

template <typename Backend>
template <typename Out, typename In>
void Mix<Backend>::LaunchKernel(Workspace &ws, kernels::DynamicScratchpad &scratch,
                                detail::HostTimer &timer) {
  static_assert(std::is_same_v<Backend, GPUBackend>, "the GPU backend's work");
  const int n = ws.Input<GPUBackend>(0).num_samples();
  const BatchShape &shape = images_.shape;
  cudaStream_t stream = ws.stream();
  auto iv = view<const In>(ws.Input<GPUBackend>(0));
  auto ov = view<Out>(ws.Output<GPUBackend>(0));
  // the target rows (none with index targets: the kernel writes no rows when K is 0)
  std::vector<float *> target_rows(n, nullptr);
  if (!args_.index_targets) target_rows = view<float>(ws.Output<GPUBackend>(1)).data;
  TensorListView<StorageGPU, float> mv, pv;
  if (args_.output_mask) mv = view<float>(ws.Output<GPUBackend>(args_.MaskOutput()));
  if (args_.output_params) pv = view<float>(ws.Output<GPUBackend>(args_.ParamsOutput()));
  std::vector<float> param_rows(args_.output_params ? 4 * n : 0);
  for (int i = 0; args_.output_params && i < n; i++)
    plan_.ParamsRow(i, sample_args_.methods[i], &param_rows[4 * i], shape.H, shape.W);
  const std::vector<float> &norm = images_.norm;  // empty without normalisation

  // the kernel instance (vector path and its C, or the fallback; plain or not) does not depend
  // on the grid size, so plan once to pick it, then again with its resident blocks
  const bool aligned = VectorAligned(shape, iv.data.data(), ov.data.data(), n);
  const bool mask_aligned = !args_.output_mask || AllAligned(mv.data.data(), n);
  auto plan = [&](int sms, int blocks_per_sm) {
    LaunchGeometry g = PlanLaunch<In>(shape, aligned, mask_aligned, sms, blocks_per_sm);
    g.seg_bytes = args_.has_maps ? maps_.LabelBytes() : 0;
    g.plain = PlainLaunch<Out, In>(g, plan_.params.data(), args_.output_mask,
                                   shape.normalize ? norm.data() : nullptr);
    return g;
  };
  LaunchGeometry g = plan(1, 1);
  int sms = 0, blocks_per_sm = 0;
  WithInstance<Out, In>(g, [&](auto c, auto plain) {
    DeviceSlots<decltype(c)::value, decltype(plain)::value, Out, In>(&sms, &blocks_per_sm);
  });
  g = plan(sms, blocks_per_sm);

  std::vector<const void *> maps_in(args_.has_maps ? n : 0);
  std::vector<void *> maps_out(args_.has_maps ? n : 0);
  for (int i = 0; args_.has_maps && i < n; i++) {
    maps_in[i] = ws.Input<GPUBackend>(2).raw_tensor(i);
    maps_out[i] = ws.Output<GPUBackend>(args_.MapsOutput()).raw_mutable_tensor(i);
  }
  std::vector<SampleDesc<Out, In>> descs(n);
  BuildDescs<Out, In>(n, ov.data.data(), iv.data.data(),
                      args_.output_mask ? mv.data.data() : nullptr, target_rows.data(),
                      args_.output_params ? pv.data.data() : nullptr, plan_.params.data(),
                      labels_.targets.data(), sample_args_.mirror.data(), descs.data(),
                      args_.has_maps ? maps_in.data() : nullptr,
                      args_.has_maps ? maps_out.data() : nullptr);
  timer.Step("plan");
  // one host-to-device copy for everything the kernel reads besides the images
  auto [descs_gpu, tables_gpu, bits_gpu, norm_gpu, soft_gpu, params_gpu] =
      scratch.ToContiguousGPU(stream, descs, plan_.tables, plan_.bits, norm,
                              labels_.soft_targets, param_rows);
  timer.Step("upload");
  const KernelArgs<Out, In> args{.samples = descs_gpu, .tables = tables_gpu, .bits = bits_gpu,
                                 .norm = norm_gpu, .soft = soft_gpu, .param_rows = params_gpu,
                                 .g = g};
  WithInstance<Out, In>(g, [&](auto c, auto plain) {
    MixKernel<decltype(c)::value, decltype(plain)::value, Out, In>
        <<<g.blocks, g.threads, 0, stream>>>(args);
  });
  CUDA_CALL(cudaGetLastError());
  timer.Done(n, descs.size() * sizeof(descs[0]) + plan_.tables.size() * 4 + plan_.bits.size() +
                    norm.size() * 4 + labels_.soft_targets.size() * 4 + param_rows.size() * 4,
             "launch");
}

template <>
void Mix<GPUBackend>::RunImpl(Workspace &ws) {
  detail::HostTimer timer("GPU");
  const auto &in = ws.Input<GPUBackend>(0);
  auto &out = ws.Output<GPUBackend>(0);
  const int n = in.num_samples();
  timer.Record("draw", draw_us_);  // the draw ran in SetupImpl
  cudaStream_t stream = ws.stream();
  // local: its device and pinned memory is freed in stream order, after the copies below
  kernels::DynamicScratchpad scratch(stream);
  std::optional<PartnerMaps> partner_maps;  // ClassMix's, read back while FMix's are made
  if (args_.has_maps && !plan_.classmix_jobs.empty())
    partner_maps.emplace(ws.Input<GPUBackend>(2), plan_.classmix_jobs, n, scratch, stream);
  MakeFMixMasks(ws);
  timer.Step("fmix");
  if (partner_maps) {
    CUDA_CALL(cudaStreamSynchronize(stream));
    MakeClassMixMasks(ws, [&](int j) { return partner_maps->Of(j); });
    timer.Step("classmix");
  }
  if (!args_.index_targets) labels_.MakeTargets(plan_.weights, n, args_.label_smoothing);
  SetOutputLayouts(ws);
  if (n == 0) return;
  // host memory to an output, staged through pinned memory: the copies are truly asynchronous,
  // and the next batch may overwrite the source while they are in flight
  auto upload = [&](void *dst, const void *src, size_t bytes) {
    uint8_t *staged = scratch.AllocatePinned<uint8_t>(bytes);
    std::memcpy(staged, src, bytes);
    CUDA_CALL(cudaMemcpyAsync(dst, staged, bytes, cudaMemcpyHostToDevice, stream));
  };
  if (args_.index_targets)  // 12 bytes a sample, made on the host (the kernel writes no rows)
    labels_.WriteIndexTargets<GPUBackend>(ws, 1, plan_.weights, n, upload);
  if (args_.has_boxes) boxes_.Write<GPUBackend>(ws, args_.BoxesOutput(), upload);
  TYPE_SWITCH(in.type(), type2id, In, (uint8_t, float16, float), (
    TYPE_SWITCH(out.type(), type2id, Out, (uint8_t, float16, float), (
      LaunchKernel<Out, In>(ws, scratch, timer);
    ), DALI_FAIL(make_string("Unsupported output type ", out.type(), ".")));  // NOLINT
  ), DALI_FAIL(make_string("Unsupported input type ", in.type(), ".")));  // NOLINT
}

}  // namespace msda

DALI_REGISTER_OPERATOR(msda__Mix, ::msda::Mix<::dali::GPUBackend>, ::dali::GPU);
