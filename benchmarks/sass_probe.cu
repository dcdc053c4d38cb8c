// The op's kernel instances, compiled alone for benchmarks/sass_stats.py (which reads their
// machine code): the same template (kernel.h MixThread) at the same launch bounds as mix.cu's
// MixKernel, for every input / output type, vector C (0: the per-pixel fallback) and instance
// (launch.h PlainKind: general, plain for boxes, plain for masks), plus "hot" probes: the main
// case's unit with its launch-uniform settings (input HWC, output CHW, normalised, no label
// maps, no mask rows) fixed at compile time, so that the unit loop of the probe holds only the
// code that case runs (per-sample branches, such as the mirror, stay: both of their sides are
// counted).

#include "mix/kernel.h"

namespace probe {

template <int C, int kPlain, typename Out, typename In>
__global__ void __launch_bounds__(msda::kBlockThreads, msda::kMinBlocks)
    OpKernel(const msda::KernelArgs<Out, In> args) {
  msda::MixThread<C, kPlain>(args, blockIdx.x, threadIdx.x);
}

template <int C, int kPlain, typename Out, typename In>
__global__ void __launch_bounds__(msda::kBlockThreads, msda::kMinBlocks)
    HotKernel(const msda::KernelArgs<Out, In> args) {
  msda::KernelArgs<Out, In> a = args;
  a.g.in_planar = 0;
  a.g.out_planar = 1;
  a.g.normalize = 1;
  a.g.seg_bytes = 0;
  a.g.mask_vec = 0;
  a.g.frames = 1;
  msda::MixThread<C, kPlain>(a, blockIdx.x, threadIdx.x);
}

template <typename Out, typename In>
void Instantiate() {
  auto one = [](auto c) {  // the general instance, and the plain ones where they exist
    constexpr int C = decltype(c)::value;
    (void)&OpKernel<C, msda::kGeneral, Out, In>;
    if constexpr (C == 3) (void)&HotKernel<C, msda::kGeneral, Out, In>;
    if constexpr (msda::HasPlainInstance<Out, In>(C)) {
      (void)&OpKernel<C, msda::kPlainBoxes, Out, In>;
      (void)&OpKernel<C, msda::kPlainMasks, Out, In>;
      if constexpr (C == 3) {
        (void)&HotKernel<C, msda::kPlainBoxes, Out, In>;
        (void)&HotKernel<C, msda::kPlainMasks, Out, In>;
      }
    }
  };
  one(std::integral_constant<int, 0>{});
  one(std::integral_constant<int, 1>{});
  one(std::integral_constant<int, 2>{});
  one(std::integral_constant<int, 3>{});
  one(std::integral_constant<int, 4>{});
}

template <typename Out>
void InstantiateOut() {
  Instantiate<Out, uint8_t>();
  Instantiate<Out, dali::float16>();
  Instantiate<Out, float>();
}

void All() {
  InstantiateOut<uint8_t>();
  InstantiateOut<dali::float16>();
  InstantiateOut<float>();
}

}  // namespace probe
