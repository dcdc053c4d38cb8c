// FMix masks on the host (fmix.h): spectrum weights, the inverse 2-D FFT in numpy.fft.irfft2's
// steps (pocketfft, single-threaded: the operator runs one mask per thread), then a selection of
// the largest values.

#include "fmix.h"

#include <algorithm>
#include <complex>
#include <functional>
#include <vector>

#define POCKETFFT_NO_MULTITHREADING
#include "../third_party/pocketfft/pocketfft_hdronly.h"

namespace msda {

namespace {

/// The spectrum weights of an H x W mask, as reference.fmix_weights computes them in NumPy:
/// frequencies k * (1 / n) (numpy.fft.fftfreq / rfftfreq), magnitude sqrt(fx^2 + fy^2).
void Weights(int H, int W, double decay_power, std::vector<double> &out) {
  const int wf = W / 2 + 1;
  out.resize(size_t(H) * wf);
  const double vy = 1.0 / H, vx = 1.0 / W, floor_f = 1.0 / std::max(H, W);
  for (int y = 0; y < H; y++) {
    const int ky = y <= (H - 1) / 2 ? y : y - H;  // fftfreq's order: 0..(H-1)/2, then negative
    const double fy = ky * vy;
    for (int x = 0; x < wf; x++) {
      const double fx = x * vx;
      const double f = std::sqrt(fx * fx + fy * fy);
      out[size_t(y) * wf + x] = 1.0 / std::pow(std::max(f, floor_f), decay_power);
    }
  }
}

struct Scratch {
  int H = 0, W = 0;
  double decay = 0.0;
  std::vector<double> weights, image, values;  // values: the image's, reordered by the selection
  std::vector<std::complex<double>> spectrum, columns;
};

/// bits[k / 8] bit k % 8 = take(v[k]) for the n values, eight a byte (a last byte's other bits
/// 0): every byte of the mask written.
template <typename Take>
void PackBits(const double *v, int64_t n, uint8_t *bits, const Take &take) {
  const int64_t full = n / 8;
  for (int64_t b = 0; b < full; b++) {
    unsigned byte = 0;
    for (int i = 0; i < 8; i++) byte |= unsigned(take(v[8 * b + i])) << i;
    bits[b] = uint8_t(byte);
  }
  if (n % 8) {
    unsigned byte = 0;
    for (int64_t k = 8 * full; k < n; k++) byte |= unsigned(take(v[k])) << (k % 8);
    bits[full] = uint8_t(byte);
  }
}

}  // namespace

void FMixMask(const double *noise, int H, int W, double decay_power, int64_t ones,
              uint8_t *bits) {
  static thread_local Scratch s;
  const int wf = W / 2 + 1;
  const int64_t bins = int64_t(H) * wf, n = int64_t(H) * W;
  if (s.H != H || s.W != W || s.decay != decay_power) {
    Weights(H, W, decay_power, s.weights);
    s.H = H;
    s.W = W;
    s.decay = decay_power;
  }
  s.spectrum.resize(bins);
  for (int64_t b = 0; b < bins; b++)
    s.spectrum[b] = {s.weights[b] * noise[2 * b], s.weights[b] * noise[2 * b + 1]};
  s.image.resize(n);
  s.columns.resize(bins);
  // numpy.fft.irfft2's transforms and scales, step by step, so that values equal in exact
  // arithmetic round alike here and there (they tie, and ties go to the lower index): the
  // inverse complex FFT down the columns times 1 / H, then the inverse real FFT along the rows
  // times 1 / W (numpy's irfftn: ifft, then irfft, each with norm "backward")
  const pocketfft::stride_t in_stride{ptrdiff_t(wf * sizeof(std::complex<double>)),
                                      ptrdiff_t(sizeof(std::complex<double>))};
  const pocketfft::stride_t out_stride{ptrdiff_t(W * sizeof(double)), ptrdiff_t(sizeof(double))};
  pocketfft::c2c(pocketfft::shape_t{size_t(H), size_t(wf)}, in_stride, in_stride, {0}, false,
                 s.spectrum.data(), s.columns.data(), 1.0 / H, 1);
  pocketfft::c2r(pocketfft::shape_t{size_t(H), size_t(W)}, in_stride, out_stride, 1, false,
                 s.columns.data(), s.image.data(), 1.0 / W, 1);
  ones = std::clamp<int64_t>(ones, 0, n);
  if (ones == 0) {
    std::fill(bits, bits + (n + 7) / 8, uint8_t(0));
    return;
  }
  // the `ones` largest values, the lower index first on ties: every value above the ones-th
  // largest, then as many equal to it as are left, in index order
  s.values.assign(s.image.begin(), s.image.end());
  std::nth_element(s.values.begin(), s.values.begin() + (ones - 1), s.values.end(),
                   std::greater<double>());
  const double cut = s.values[ones - 1];
  int64_t ties = ones - std::count_if(s.values.begin(), s.values.begin() + (ones - 1),
                                      [cut](double v) { return v > cut; });
  // (through a local pointer: `bits` may alias the thread-local scratch, whose address the
  // loops would otherwise look up again, a call in a shared library, after every store)
  const double *image = s.image.data();
  PackBits(image, n, bits, [cut](double v) { return v > cut; });
  for (int64_t k = 0; k < n && ties > 0; k++) {
    if (image[k] == cut) {
      bits[k >> 3] |= uint8_t(1u << (k & 7));
      ties--;
    }
  }
}

}  // namespace msda
