// The op's kernel instances, compiled alone for benchmarks/sass_stats.py (which reads their
// machine code): the same template (kernel.h MixThread) at the same launch bounds as mix.cu's
// MixKernel, for every input / output type, vector C (0: the per-pixel fallback) and kind
// (plain or general), plus "hot" probes: the main case's unit with its launch-uniform settings
// (input HWC, output CHW, normalised, no label maps, no mask rows) fixed at compile time, so
// that the unit loop of the probe holds only the code that case runs (per-sample branches,
// such as the mirror, stay: both of their sides are counted).

#include "mix/kernel.h"

namespace probe {

template <int C, bool kPlain, typename Out, typename In>
__global__ void __launch_bounds__(msda::kBlockThreads, msda::kMinBlocks)
    OpKernel(const msda::KernelArgs<Out, In> args) {
  msda::MixThread<C, kPlain>(args, blockIdx.x, threadIdx.x);
}

template <int C, bool kPlain, typename Out, typename In>
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
  auto one = [](auto c, auto plain) {
    constexpr int C = decltype(c)::value;
    constexpr bool kPlain = decltype(plain)::value;
    (void)&OpKernel<C, kPlain, Out, In>;
    if constexpr (C == 3) (void)&HotKernel<C, kPlain, Out, In>;
  };
  using G = std::bool_constant<false>;
  using P = std::bool_constant<true>;
  one(std::integral_constant<int, 0>{}, G{});
  one(std::integral_constant<int, 1>{}, G{});
  one(std::integral_constant<int, 2>{}, G{});
  one(std::integral_constant<int, 3>{}, G{});
  one(std::integral_constant<int, 4>{}, G{});
  if constexpr (std::is_integral_v<In>) {
    one(std::integral_constant<int, 1>{}, P{});
    one(std::integral_constant<int, 2>{}, P{});
    one(std::integral_constant<int, 3>{}, P{});
    if constexpr (sizeof(Out) != 4) one(std::integral_constant<int, 4>{}, P{});
  }
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
