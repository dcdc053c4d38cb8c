// The words of DALI's Philox4x32_10 stream, made here many counters at a time: FMix's noise
// (tens of thousands of words a mask) is drawn from the job's generator, and DALI's next()
// computes each block of four words in an out-of-line call. The words are the same (Philox4x32-10
// of Salmon et al., 2011, on the counter and key of DALI's State; tests/test_kernel_emulation.py
// compares them with DALI's class over phases and counter carries), so a seed's masks do not
// change.

#ifndef DALI_MSDA_CSRC_MIX_PHILOX_WORDS_H_
#define DALI_MSDA_CSRC_MIX_PHILOX_WORDS_H_

#include <cstdint>

#include "dali/core/random/philox.h"

#include "cpu_clones.h"

namespace msda {

constexpr int kPhiloxBlocks = 32;

/// The words of the Philox4x32-10 blocks of counters (hi:lo) + 0 ... kPhiloxBlocks - 1 under
/// `key` (DALI's State: key, ctr[1], ctr[0]), four a block, into `words`: each round of every
/// block in one loop, which the compiler vectorises (for AVX2 too: cpu_clones.h).
MSDA_CPU_CLONES inline void PhiloxBlocks(uint64_t key, uint64_t lo, uint64_t hi,
                                         uint32_t *words) {
  constexpr int n = kPhiloxBlocks;
  uint32_t x[n], y[n], z[n], w[n];
  for (int b = 0; b < n; b++) {
    const uint64_t l = lo + uint64_t(b), h = hi + uint64_t(l < lo);  // 128-bit add
    x[b] = uint32_t(l);
    y[b] = uint32_t(l >> 32);
    z[b] = uint32_t(h);
    w[b] = uint32_t(h >> 32);
  }
  uint32_t kx = uint32_t(key), ky = uint32_t(key >> 32);
  for (int round = 0; round < 10; round++) {
    for (int b = 0; b < n; b++) {
      const uint64_t m0 = uint64_t(0xD2511F53u) * x[b], m1 = uint64_t(0xCD9E8D57u) * z[b];
      const uint32_t y0 = y[b], w0 = w[b];
      x[b] = uint32_t(m1 >> 32) ^ y0 ^ kx;
      y[b] = uint32_t(m1);
      z[b] = uint32_t(m0 >> 32) ^ w0 ^ ky;
      w[b] = uint32_t(m0);
    }
    kx += 0x9E3779B9u;  // the Weyl sequence of the key
    ky += 0xBB67AE85u;
  }
  for (int b = 0; b < n; b++) {
    words[4 * b] = x[b];
    words[4 * b + 1] = y[b];
    words[4 * b + 2] = z[b];
    words[4 * b + 3] = w[b];
  }
}

/// A uniform random bit generator of uint32 words: those that a dali::Philox4x32_10 in the given
/// state returns from its next word on, kPhiloxBlocks blocks of four computed at a time. Only the
/// words: the generator it was made from does not move.
class PhiloxWords {
 public:
  using result_type = uint32_t;
  static constexpr uint32_t min() { return 0; }
  static constexpr uint32_t max() { return 0xffffffffu; }

  explicit PhiloxWords(const ::dali::Philox4x32_10 &rng) {
    const auto state = rng.get_state();
    key_ = state.key;
    lo_ = state.ctr[0];
    hi_ = state.ctr[1];
    Fill();
    pos_ = state.phase;  // the next word is word `phase` of the current block
  }

  uint32_t operator()() {
    if (pos_ == kWords) {
      Fill();
      pos_ = 0;
    }
    return words_[pos_++];
  }

 private:
  static constexpr int kWords = 4 * kPhiloxBlocks;

  void Fill() {  // the next kPhiloxBlocks blocks; the counter moves past them
    PhiloxBlocks(key_, lo_, hi_, words_);
    const uint64_t lo = lo_ + uint64_t(kPhiloxBlocks);
    hi_ += uint64_t(lo < lo_);
    lo_ = lo;
  }

  uint64_t key_ = 0, lo_ = 0, hi_ = 0;
  int pos_ = 0;
  uint32_t words_[kWords];
};

}  // namespace msda

#endif  // DALI_MSDA_CSRC_MIX_PHILOX_WORDS_H_
