// The masks made on the host after the draw, for both backends: FMix's (an inverse FFT of
// low-frequency noise per mask, fmix.h) and ClassMix's (from the partner's label map, spec 12).
// Each writes its H x W bits into the plan (BatchPlan::bits, at its job's mask_offset); ClassMix
// also sets its samples' label weights, known once their masks are counted. `run(jobs, cost,
// make)` runs make(k) for the k < jobs jobs: on DALI's thread pool (CPU backend) or on threads of
// the op's own (GPU backend).

#ifndef DALI_MSDA_CSRC_MIX_HOST_MASKS_H_
#define DALI_MSDA_CSRC_MIX_HOST_MASKS_H_

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "fmix.h"
#include "mask.h"
#include "plan.h"

namespace msda {

/// `count` values of FMix noise drawn from `rng`'s stream, from its next word on (the generator
/// does not move): StandardNormals (params.h) on its words, computed many blocks at a time
/// (fmix_noise.cc, philox_words.h).
void FMixNoise(const Philox4x32_10 &rng, int64_t count, double *out);

/// The FMix masks of the plan. `noise(i)` is sample i's given noise (FMixNoiseSize floats), or
/// null where the noise is drawn from the job's stream.
template <typename NoiseOf, typename Run>
void MakeFMixMasks(BatchPlan &plan, int H, int W, double decay_power, const NoiseOf &noise,
                   const Run &run) {
  if (plan.fmix_jobs.empty()) return;
  auto make = [&](size_t k) {
    static thread_local std::vector<double> values;
    const HostMaskJob &job = plan.fmix_jobs[k];
    const int64_t size = FMixNoiseSize(H, W);
    values.resize(size);
    if (const float *v = noise(job.sample)) {
      std::copy(v, v + size, values.begin());
    } else {
      FMixNoise(job.rng, size, values.data());
    }
    FMixMask(values.data(), H, W, decay_power, job.ones, plan.bits.data() + job.mask_offset);
  };
  run(plan.fmix_jobs.size(), int64_t(H) * W, make);
}

/// The widest range of an int32 map's labels that ClassMix looks up in a table.
constexpr int64_t kClassTableSpan = int64_t(1) << 16;

/// One ClassMix mask (spec 12) from its partner's label map (H x W of `T`, shown mirrored when
/// `flip`), its labels picked by `rng`, written into `bits` (BitsSize bytes); returns its ones.
/// Labels are looked up in a table over the map's range (every uint8 map; int32 maps whose
/// labels span at most kClassTableSpan values, as class ids do), else among the sorted labels.
/// No step branches on a pixel's label: a map's labels may change every pixel. (Sizes are
/// values here: read through a reference they would be read again after every byte store.)
template <typename T>
int64_t ClassMixMask(const T *map, int H, int W, int flip, int ignore_index, Philox4x32_10 rng,
                     uint8_t *bits) {
  const int64_t hw = int64_t(H) * W;
  static thread_local std::vector<T> classes;
  static thread_local std::vector<uint8_t> table, flags;
  // the present labels, sorted, the ignore label left out
  int64_t lo = 0, span = 0;  // the table's labels: [lo, lo + span)
  if constexpr (sizeof(T) == 1) {
    span = 256;
  } else if (hw > 0) {
    const auto [min, max] = std::minmax_element(map, map + hw);
    if (int64_t(*max) - *min < kClassTableSpan) {
      lo = *min;
      span = int64_t(*max) - *min + 1;
    }
  }
  classes.clear();
  if (span > 0) {
    table.assign(span, 0);
    uint8_t *seen = table.data();  // seen[v - lo]: label v is present
    for (int64_t k = 0; k < hw; k++) seen[int64_t(map[k]) - lo] = 1;
    for (int64_t v = 0; v < span; v++)
      if (seen[v]) classes.push_back(static_cast<T>(lo + v));
  } else {
    classes.assign(map, map + hw);
    std::sort(classes.begin(), classes.end());
    classes.erase(std::unique(classes.begin(), classes.end()), classes.end());
  }
  // (an ignore label the map's type cannot hold, e.g. -1 for uint8, leaves nothing out)
  if (ignore_index >= int64_t(std::numeric_limits<T>::min()) &&
      ignore_index <= int64_t(std::numeric_limits<T>::max()))
    classes.erase(std::remove(classes.begin(), classes.end(), static_cast<T>(ignore_index)),
                  classes.end());
  const int n_classes = static_cast<int>(classes.size());
  const int k_sel = (n_classes + 1) / 2;  // ceil(n / 2): the official int((n + n % 2) / 2)
  for (int t = 0; t < k_sel; t++)  // a partial Fisher-Yates shuffle picks them
    std::swap(classes[t], classes[t + UniformInt(rng, n_classes - t)]);
  std::sort(classes.begin(), classes.begin() + k_sel);
  // the table now says which labels keep the own image (M = 1): those not picked
  if (span > 0) {
    std::fill(table.begin(), table.end(), uint8_t(1));
    for (int t = 0; t < k_sel; t++) table[int64_t(classes[t]) - lo] = 0;
  }
  std::fill(bits, bits + BitsSize(Method::kClassMix, H, W), uint8_t(0));
  flags.resize(W);
  uint8_t *f = flags.data();
  const uint8_t *keeps = table.data();  // keeps[v - lo]: label v keeps the own image
  const T *picked = classes.data();
  int64_t ones = 0;
  for (int r = 0; r < H; r++) {
    const T *row = map + int64_t(r) * W;
    if (span > 0) {
      if (flip) {
        for (int c = 0; c < W; c++) f[c] = keeps[int64_t(row[W - 1 - c]) - lo];
      } else {
        for (int c = 0; c < W; c++) f[c] = keeps[int64_t(row[c]) - lo];
      }
    } else {
      for (int c = 0; c < W; c++)
        f[c] = !std::binary_search(picked, picked + k_sel, row[flip ? W - 1 - c : c]);
    }
    for (int c = 0; c < W; c++) ones += f[c];
    PackMaskBits(f, W, bits, int64_t(r) * W);
  }
  return ones;
}

/// The ClassMix masks of the plan (spec 12) and their samples' weights. `map_of(j)` is sample
/// j's label map (H x W of `T`: uint8_t or int32_t) in host memory, `mirror` the samples' flips.
template <typename T, typename MapOf, typename Run>
void MakeClassMixMasks(BatchPlan &plan, int H, int W, int ignore_index, const int *mirror,
                       const MapOf &map_of, const Run &run) {
  if (plan.classmix_jobs.empty()) return;
  const int64_t hw = int64_t(H) * W;
  auto make = [&](size_t k) {
    const HostMaskJob &job = plan.classmix_jobs[k];
    const int64_t ones =
        ClassMixMask(static_cast<const T *>(map_of(job.partner)), H, W, mirror[job.partner],
                     ignore_index, job.rng, plan.bits.data() + job.mask_offset);
    plan.weights[job.sample] = double(ones) / double(hw);  // the mask mean, exactly
  };
  run(plan.classmix_jobs.size(), hw, make);
}

}  // namespace msda

#endif  // DALI_MSDA_CSRC_MIX_HOST_MASKS_H_
