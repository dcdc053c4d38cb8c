// FMix's host side per batch (CPU only): making the masks (FMixMask: noise spectrum, inverse FFT,
// selection, bit fill) and copying the batch's mask bytes once more, as the GPU op's upload does
// (DALI's ToContiguousGPU copies them into a pinned staging buffer before the one host-to-device
// copy). Build and run:
//   g++ -std=c++20 -O3 -I dali_msda/csrc benchmarks/fmix_host.cc dali_msda/csrc/mix/fmix.cc \
//       -o build/fmix_host && build/fmix_host [batch] [reps]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "mix/fmix.h"

int main(int argc, char **argv) {
  const int H = 224, W = 224;
  const int n = argc > 1 ? std::atoi(argv[1]) : 256, reps = argc > 2 ? std::atoi(argv[2]) : 5;
  const int64_t mask_bytes = (int64_t(H) * W + 7) / 8;
  std::vector<double> noise(msda::FMixNoiseSize(H, W));
  std::mt19937_64 rng(1);
  std::normal_distribution<double> normal;
  for (auto &v : noise) v = normal(rng);
  std::vector<uint8_t> bits(n * mask_bytes), pinned(bits.size());
  std::vector<double> make_ms, copy_ms;
  using Clock = std::chrono::steady_clock;
  for (int rep = 0; rep < reps; rep++) {
    const auto t0 = Clock::now();
    for (int i = 0; i < n; i++)
      msda::FMixMask(noise.data(), H, W, 3.0, H * W / 2, bits.data() + i * mask_bytes);
    const auto t1 = Clock::now();
    std::memcpy(pinned.data(), bits.data(), bits.size());
    const auto t2 = Clock::now();
    make_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    copy_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
  }
  std::sort(make_ms.begin(), make_ms.end());
  std::sort(copy_ms.begin(), copy_ms.end());
  std::printf("batch %d x %dx%d: masks %.1f ms (%.3f ms a mask), %.2f MB of masks, "
              "copy %.3f ms (medians of %d)\n", n, H, W, make_ms[reps / 2], make_ms[reps / 2] / n,
              bits.size() / 1e6, copy_ms[reps / 2], reps);
}
