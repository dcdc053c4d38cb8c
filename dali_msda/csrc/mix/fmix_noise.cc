// FMix's noise from a job's generator (host_masks.h FMixNoise), in a translation unit of its own:
// the Philox blocks are compiled for AVX2 and the x86-64 baseline here (philox_words.h) for both
// backends, the GPU op's host code included, and fmix.cc stays free of DALI's headers (the kernel
// benchmark compiles it with nvcc alone).

#include "host_masks.h"
#include "params.h"
#include "philox_words.h"

namespace msda {

void FMixNoise(const Philox4x32_10 &rng, int64_t count, double *out) {
  PhiloxWords words(rng);
  StandardNormals<PhiloxWords &>(words, count, out);
}

}  // namespace msda
