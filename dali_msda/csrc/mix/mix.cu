// msda.Mix: CUDA backend and GPU registration.
//
// ONE kernel launch per batch over a persistent grid (the device's resident blocks, or fewer for
// a small batch). The work of a thread is MixThread (kernel.h: host/device, so that a host
// harness runs every thread of the same launch), and so is the host-side planning (PlanLaunch,
// BuildDescs, KernelArgs). What is left here is only GPU plumbing: the device's SM count and
// occupancy, one upload of everything the kernel reads besides the images, and the launch.
//
// Compiled with -fmad=false so that every value is computed exactly as on the CPU.

#include <cstring>
#include <mutex>
#include <vector>

#include "dali/core/cuda_error.h"
#include "dali/kernels/dynamic_scratchpad.h"

#include "kernel.h"
#include "mix.h"

namespace msda {

namespace {

template <int C, bool kPlain, typename Out, typename In>
__global__ void __launch_bounds__(kBlockThreads, kMinBlocks)
    MixKernel(const KernelArgs<Out, In> args) {
  MixThread<C, kPlain>(args, blockIdx.x, threadIdx.x);
}

/// SMs of the current device and resident MixKernel<C, kPlain, Out, In> blocks per SM (asked
/// once per device and kernel instance).
template <int C, bool kPlain, typename Out, typename In>
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

}  // namespace

template <>
void Mix<GPUBackend>::RunImpl(Workspace &ws) {
  detail::HostTimer timer("GPU");
  const auto &in = ws.Input<GPUBackend>(0);
  auto &out = ws.Output<GPUBackend>(0);
  const int n = in.num_samples();
  timer.Record("draw", draw_us_);  // DrawParams ran in SetupImpl
  cudaStream_t stream = ws.stream();
  // local: its device and pinned memory is freed in stream order, after the copies below
  kernels::DynamicScratchpad scratch(stream);
  // ClassMix makes its masks on the host from the partners' maps: only those are read back,
  // into pinned memory, the copies issued first so that they run while FMix's masks are made;
  // one synchronisation a batch remains (a device-side class count would avoid it)
  const bool classmix = has_seg_ && !classmix_jobs_.empty();
  std::vector<int> map_slot(classmix ? n : 0, -1);  // per sample: its map's place in map_host
  uint8_t *map_host = nullptr;
  int64_t map_bytes = 0;
  if (classmix) {
    const auto &maps = ws.Input<GPUBackend>(2);
    map_bytes = int64_t(geom_.H) * geom_.W * maps.type_info().size();
    map_host = scratch.AllocatePinned<uint8_t>(classmix_jobs_.size() * map_bytes);
    int slots = 0;
    for (const ClassMixJob &job : classmix_jobs_) {
      int &slot = map_slot[job.partner];
      if (slot >= 0) continue;
      slot = slots++;
      CUDA_CALL(cudaMemcpyAsync(map_host + slot * map_bytes, maps.raw_tensor(job.partner),
                                map_bytes, cudaMemcpyDeviceToHost, stream));
    }
  }
  BuildFMixMasks(ws);
  timer.Step("fmix");
  if (classmix) {
    CUDA_CALL(cudaStreamSynchronize(stream));
    BuildClassMixMasks(ws, [&](int j) -> const void * {
      return map_host + map_slot[j] * map_bytes;
    });
    timer.Step("classmix");
  }
  SetOutputLayouts(ws);
  if (n == 0) return;
  if (has_boxes_)  // staged through pinned memory: the copies are truly asynchronous, and the
                   // next batch may overwrite mixed_boxes_ while they are in flight
    WriteBoxes(ws, [&](void *dst, const void *src, size_t bytes) {
      uint8_t *staged = scratch.AllocatePinned<uint8_t>(bytes);
      std::memcpy(staged, src, bytes);
      CUDA_CALL(cudaMemcpyAsync(dst, staged, bytes, cudaMemcpyHostToDevice, stream));
    });

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
      const bool aligned = VectorAligned(Shape(n), iv.data.data(), ov.data.data(), n);
      const bool mask_aligned = !output_mask_ || AllAligned(mv.data.data(), n);
      // the kernel instance (vector path and its C, or the fallback; plain or not) does not
      // depend on the grid size, so plan once to pick it, then again with its resident blocks
      const int seg_bytes =
          has_seg_ ? static_cast<int>(ws.Input<GPUBackend>(2).type_info().size()) : 0;
      auto plan = [&](int sms, int blocks_per_sm) {
        LaunchGeometry p = PlanLaunch<In>(Shape(n), aligned, mask_aligned, sms, blocks_per_sm);
        p.seg_bytes = seg_bytes;
        p.plain = PlainLaunch<Out, In>(p, params_.data(), output_mask_,
                                       normalize_ ? norm_.data() : nullptr);
        return p;
      };
      LaunchGeometry g = plan(1, 1);
      int sms = 0, blocks_per_sm = 0;
      WithInstance<Out, In>(g, [&](auto c, auto plain) {
        DeviceSlots<decltype(c)::value, decltype(plain)::value, Out, In>(&sms, &blocks_per_sm);
      });
      g = plan(sms, blocks_per_sm);
      std::vector<const void *> seg_in(has_seg_ ? n : 0);
      std::vector<void *> seg_out(has_seg_ ? n : 0);
      if (has_seg_) {
        const auto &si = ws.Input<GPUBackend>(2);
        auto &so = ws.Output<GPUBackend>(SegOutputIdx());
        for (int i = 0; i < n; i++) {
          seg_in[i] = si.raw_tensor(i);
          seg_out[i] = so.raw_mutable_tensor(i);
        }
      }
      std::vector<SampleDesc<Out, In>> descs(n);
      BuildDescs<Out, In>(n, ov.data.data(), iv.data.data(),
                          output_mask_ ? mv.data.data() : nullptr, tv.data.data(),
                          output_params_ ? pv.data.data() : nullptr, params_.data(),
                          target_specs_.data(), mirror_.data(), descs.data(),
                          has_seg_ ? seg_in.data() : nullptr,
                          has_seg_ ? seg_out.data() : nullptr);
      timer.Step("plan");
      // one host-to-device copy for everything the kernel reads besides the images
      auto [descs_gpu, tables_gpu, bits_gpu, norm_gpu, soft_gpu, params_gpu] =
          scratch.ToContiguousGPU(stream, descs, tables_, bits_, norm_, soft_targets_,
                                  param_rows);
      timer.Step("upload");
      const KernelArgs<Out, In> args{.samples = descs_gpu, .tables = tables_gpu,
                                     .bits = bits_gpu, .norm = norm_gpu, .soft = soft_gpu,
                                     .param_rows = params_gpu, .g = g};
      WithInstance<Out, In>(g, [&](auto c, auto plain) {
        MixKernel<decltype(c)::value, decltype(plain)::value, Out, In>
            <<<g.blocks, g.threads, 0, stream>>>(args);
      });
      CUDA_CALL(cudaGetLastError());
      timer.Done(n, descs.size() * sizeof(descs[0]) + tables_.size() * 4 + bits_.size() +
                        norm_.size() * 4 + soft_targets_.size() * 4 + param_rows.size() * 4,
                 "launch");
    ), DALI_FAIL(make_string("Unsupported output type ", out.type(), ".")));  // NOLINT
  ), DALI_FAIL(make_string("Unsupported input type ", in.type(), ".")));  // NOLINT
}

}  // namespace msda

DALI_REGISTER_OPERATOR(msda__Mix, ::msda::Mix<::dali::GPUBackend>, ::dali::GPU);
