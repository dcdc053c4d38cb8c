// Memory accesses of the kernel's body (kernel.h): on the GPU plain (read-only) loads and stores;
// in a host build each access is checked for alignment (and, where the harness installs bounds,
// for lying inside the memory the launch may touch) and, when a recorder is installed (the
// harness, tests/kernel_harness.cc), recorded with its call site, so that the harness can count
// the 32-byte sectors a warp's access touches. Also the unrolling and inlining macros of the body.

#ifndef DALI_MSDA_CSRC_MIX_ACCESS_H_
#define DALI_MSDA_CSRC_MIX_ACCESS_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "dali/core/host_dev.h"

namespace msda {



/// What an access reads or writes: image blocks; masks, tables and targets (aux); or a field of
/// a sample's descriptor (SampleDesc), the same address in every lane of a warp that works on
/// the same pair (desc: the plain instances read their fields one by one).
enum AccessKind : int {
  kImageLoad = 0, kImageStore = 1, kAuxLoad = 2, kAuxStore = 3, kDescLoad = 4
};

#ifndef __CUDA_ARCH__
/// Host builds count the vector accesses that are not aligned to their width (a GPU faults).
inline int64_t &MisalignedAccesses() {
  static int64_t count = 0;
  return count;
}

struct AccessRecorder {
  virtual ~AccessRecorder() = default;
  /// A new iteration of the thread's unit loop (or its target loop): accesses of the threads of
  /// a warp in the same iteration, at the same site, in the same order, are one warp access.
  virtual void Iteration(int64_t it) = 0;
  virtual void Access(int site, int kind, const void *p, int bytes) = 0;
};

inline AccessRecorder *&Recorder() {
  static AccessRecorder *r = nullptr;
  return r;
}

/// The memory a launch may touch, as disjoint ranges (the harness gives each sample's image,
/// output, mask and map a range of its own, with untouchable gaps between them): a host build
/// counts the accesses that do not lie wholly inside one range (on a GPU: a read of another
/// sample's data, or a fault).
struct AccessBounds {
  std::vector<std::pair<uintptr_t, uintptr_t>> ranges;  // [begin, end), sorted by Seal
  int64_t outside = 0;
  void Add(const void *p, size_t bytes) {
    if (p && bytes) ranges.emplace_back(reinterpret_cast<uintptr_t>(p),
                                        reinterpret_cast<uintptr_t>(p) + bytes);
  }
  void Seal() { std::sort(ranges.begin(), ranges.end()); }
  void Check(const void *p, int bytes) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    auto it = std::upper_bound(ranges.begin(), ranges.end(),
                               std::make_pair(a, ~uintptr_t(0)));
    if (it == ranges.begin() || a + bytes > std::prev(it)->second) outside++;
  }
};

inline AccessBounds *&Bounds() {
  static AccessBounds *b = nullptr;
  return b;
}
#endif

DALI_HOST_DEV inline void Touch(int site, int kind, const void *p, int bytes) {
#ifndef __CUDA_ARCH__
  if (reinterpret_cast<uintptr_t>(p) % bytes != 0) MisalignedAccesses()++;
  if (Bounds()) Bounds()->Check(p, bytes);
  if (Recorder()) Recorder()->Access(site, kind, p, bytes);
#endif
}

DALI_HOST_DEV inline void NewIteration(int64_t it) {
#ifndef __CUDA_ARCH__
  if (Recorder()) Recorder()->Iteration(it);
#endif
}

#define MSDA_SITE __LINE__

// Loops over the pixels and channels of a unit are unrolled on the device, so that the register
// arrays of a unit are indexed by constants (a run-time index would put them in local memory).
#if defined(__CUDA_ARCH__)
#define MSDA_UNROLL _Pragma("unroll")
#define MSDA_INLINE __forceinline__
#define MSDA_NOINLINE __noinline__
#else
#define MSDA_UNROLL
#define MSDA_INLINE inline
#define MSDA_NOINLINE inline
#endif

/// One scalar load or store of T (T: 1, 2 or 4 bytes, or a 16-byte vector type).
template <typename T>
DALI_HOST_DEV inline T Ld(const T *p, int site, int kind = kImageLoad) {
  Touch(site, kind, p, sizeof(T));
#ifdef __CUDA_ARCH__
  if constexpr (std::is_arithmetic_v<T>) return __ldg(p);
#endif
  return *p;
}

template <typename T>
DALI_HOST_DEV inline void St(T *p, const T &v, int site, int kind = kImageStore) {
  Touch(site, kind, p, sizeof(T));
  *p = v;
}

/// The widest vector access (16, 8 or 4 bytes) that divides an N-byte block: its alignment,
/// given the vector path's conditions.
template <int N>
DALI_HOST_DEV constexpr int ChunkBytes() {
  static_assert(N % 4 == 0, "blocks are whole words");
  return N % 16 == 0 ? 16 : N % 8 == 0 ? 8 : 4;
}

/// One A-byte load into A / 4 words (the read-only path on the GPU).
template <int A>
DALI_HOST_DEV inline void LoadChunk(const char *p, uint32_t *w) {
#ifdef __CUDA_ARCH__
  if constexpr (A == 16) {
    const uint4 v = __ldg(reinterpret_cast<const uint4 *>(p));
    w[0] = v.x;
    w[1] = v.y;
    w[2] = v.z;
    w[3] = v.w;
  } else if constexpr (A == 8) {
    const uint2 v = __ldg(reinterpret_cast<const uint2 *>(p));
    w[0] = v.x;
    w[1] = v.y;
  } else {
    w[0] = __ldg(reinterpret_cast<const unsigned int *>(p));
  }
#else
  std::memcpy(w, p, A);
#endif
}

/// One A-byte store of A / 4 words.
template <int A>
DALI_HOST_DEV inline void StoreChunk(char *p, const uint32_t *w) {
#ifdef __CUDA_ARCH__
  if constexpr (A == 16)
    *reinterpret_cast<uint4 *>(p) = make_uint4(w[0], w[1], w[2], w[3]);
  else if constexpr (A == 8)
    *reinterpret_cast<uint2 *>(p) = make_uint2(w[0], w[1]);
  else
    *reinterpret_cast<unsigned int *>(p) = w[0];
#else
  std::memcpy(p, w, A);
#endif
}

/// N bytes (a multiple of 4) at p into w[N / 4], with the widest vector loads the alignment of
/// N allows (p is aligned to that: see the vector path's conditions).
template <int N>
DALI_HOST_DEV inline void LoadWords(const void *p, uint32_t *w, int site,
                                    int kind = kImageLoad) {
  constexpr int A = ChunkBytes<N>();
  const char *b = static_cast<const char *>(p);
  MSDA_UNROLL
  for (int k = 0; k < N / A; k++) {
    Touch(site, kind, b + A * k, A);
    LoadChunk<A>(b + A * k, w + (A / 4) * k);
  }
}

/// w[N / 4] to N bytes at p, with the widest vector stores the alignment of N allows.
template <int N>
DALI_HOST_DEV inline void StoreWords(void *p, const uint32_t *w, int site,
                                     int kind = kImageStore) {
  constexpr int A = ChunkBytes<N>();
  char *b = static_cast<char *>(p);
  MSDA_UNROLL
  for (int k = 0; k < N / A; k++) {
    Touch(site, kind, b + A * k, A);
    StoreChunk<A>(b + A * k, w + (A / 4) * k);
  }
}

}  // namespace msda

#endif  // DALI_MSDA_CSRC_MIX_ACCESS_H_
