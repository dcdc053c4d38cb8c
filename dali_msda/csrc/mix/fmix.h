// FMix masks (spec section 9; Harris et al. 2020, official code ecs-vlc/FMix): a binary mask cut
// from low-frequency Fourier noise, built on the host (fmix.cc, with the vendored pocketfft) and
// handed to both backends as a bit mask (kMaskBits, mask.h: one bit per pixel, 6.3 KB for
// 224 x 224 instead of 200 KB of floats). The kernels only read it, so CPU and GPU apply the
// same mask bit for bit.

#ifndef DALI_MSDA_CSRC_MIX_FMIX_H_
#define DALI_MSDA_CSRC_MIX_FMIX_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <future>
#include <vector>

namespace msda {

/// Values of FMix noise for an H x W mask: real and imaginary part of each of the
/// H x (W / 2 + 1) bins of the real-FFT grid, laid out (H, W / 2 + 1, 2) as in reference.py.
inline int64_t FMixNoiseSize(int H, int W) { return int64_t(H) * (W / 2 + 1) * 2; }

/// The number of ones of an FMix mask: ceil(lam H W) when `round_up`, else floor(lam H W) (the
/// official code flips a fair coin between the two). The product is exact in float64 for every
/// H W < 2^29.
inline int64_t FMixOnes(float lam, bool round_up, int H, int W) {
  const double x = static_cast<double>(lam) * (static_cast<double>(H) * W);
  return static_cast<int64_t>(round_up ? std::ceil(x) : std::floor(x));
}

/// The largest magnitude of the noise the operator draws (StandardNormals, params.h: Marsaglia's
/// polar method on coordinates (int32 + 1/2) / 2^31, so |u f| <= sqrt(-2 ln s) with s >= 2^-63,
/// sqrt(126 ln 2) = 9.3454...).
constexpr double kFMixDrawnNoiseMax = 9.3455;

/// Whether every value FMix's transforms compute for an H x W mask stays finite in float64 for
/// noise of magnitude at most `noise_max` (spec 9): each is bounded by the sum of the weighted
/// noise's magnitudes, at most 4 x bins x noise_max x the largest weight, max(H, W) **
/// decay_power (the weight at frequency 0, computed as FMixMask computes it). A larger
/// decay_power would overflow to infinities and NaNs, which no selection of the largest pixels
/// can rank: the operator refuses it rather than make such masks.
inline bool FMixImageBounded(int H, int W, double decay_power, double noise_max) {
  const double bins = double(H) * (W / 2 + 1);
  const double top = 1.0 / std::pow(1.0 / std::max(H, W), decay_power);
  return std::isfinite(top * (4.0 * bins * noise_max));
}

/// The largest decay_power that FMixImageBounded accepts for H x W masks (to within 1e-6
/// relative; for messages), or infinity for 1 x 1 masks, whose only weight is 1.
inline double FMixMaxDecayPower(int H, int W, double noise_max) {
  if (std::max(H, W) <= 1) return HUGE_VAL;
  double lo = 0.0, hi = 1.0;
  while (FMixImageBounded(H, W, hi, noise_max)) hi *= 2.0;
  while (hi - lo > 1e-6 * hi) {
    const double mid = 0.5 * (lo + hi);
    (FMixImageBounded(H, W, mid, noise_max) ? lo : hi) = mid;
  }
  return lo;
}

/// Writes the FMix mask for the given noise as H x W bits, row-major (MaskBit: (H W + 7) / 8
/// bytes): the `ones` pixels with the largest values of the low-frequency image
/// irfft2(a * (re + i im)), a(f) = 1 / max(f, 1 / max(H, W)) ** decay_power, set to 1 and the
/// others to 0. Ties in value are broken by the lower row-major index (as a stable sort of the
/// negated image does). Thread-safe: the scratch memory is per thread.
void FMixMask(const double *noise, int H, int W, double decay_power, int64_t ones,
              uint8_t *bits);

/// Runs make(k) for k in [0, jobs) on `threads` host threads (this one and threads - 1 more),
/// job k on thread k % threads; rethrows the first worker exception. The GPU op makes its FMix
/// masks this way (its workspace has no thread pool to share).
template <typename Make>
void ParallelJobs(int64_t jobs, int threads, const Make &make) {
  threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(jobs, threads)));
  std::vector<std::future<void>> done;
  for (int t = 1; t < threads; t++)
    done.push_back(std::async(std::launch::async, [&, t] {
      for (int64_t k = t; k < jobs; k += threads) make(k);
    }));
  std::exception_ptr error;
  try {
    for (int64_t k = 0; k < jobs; k += threads) make(k);
  } catch (...) {
    error = std::current_exception();
  }
  for (auto &f : done) {  // wait for every worker before anything they use goes away
    try {
      f.get();
    } catch (...) {
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace msda

#endif  // DALI_MSDA_CSRC_MIX_FMIX_H_
