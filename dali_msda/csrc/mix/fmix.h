// FMix masks (spec section 9; Harris et al. 2020, official code ecs-vlc/FMix): a binary mask cut
// from low-frequency Fourier noise, built on the host (fmix.cc, with the vendored pocketfft) and
// handed to both backends as a per-pixel mask table (kMaskTable, mask.h). The kernels only read
// it, so CPU and GPU apply the same mask bit for bit.

#ifndef DALI_MSDA_CSRC_MIX_FMIX_H_
#define DALI_MSDA_CSRC_MIX_FMIX_H_

#include <cmath>
#include <cstdint>

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

/// Writes the FMix mask (H x W floats, row-major) for the given noise: the `ones` pixels with the
/// largest values of the low-frequency image irfft2(a * (re + i im)), a(f) = 1 / max(f, 1 /
/// max(H, W)) ** decay_power, set to 1 and the others to 0. Ties in value are broken by the
/// lower row-major index (as a stable sort of the negated image does). Thread-safe: the
/// scratch memory is per thread.
void FMixMask(const double *noise, int H, int W, double decay_power, int64_t ones, float *mask);

}  // namespace msda

#endif  // DALI_MSDA_CSRC_MIX_FMIX_H_
