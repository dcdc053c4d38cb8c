// Host-side planning of the kernel's launch (mix.cu, and the harness that runs the same launch on
// the CPU): the launch geometry, the kernel's arguments, which instance runs a batch (vector C,
// plain or general, or the per-pixel fallback) and whether the samples' pointers allow the
// vector path. The device body that these plan for is kernel.h.

#ifndef DALI_MSDA_CSRC_MIX_LAUNCH_H_
#define DALI_MSDA_CSRC_MIX_LAUNCH_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "mask.h"

namespace msda {


template <typename Out, typename In>
struct SampleDesc {
  Out *out;
  const In *own;
  const In *partner;
  float *mask;    // nullptr unless output_mask
  float *target;  // output row of K floats
  float *params;  // output row of 4 floats, nullptr unless output_params
  SampleParams p;
  TargetSpec t;
  int32_t flip_own, flip_partner;  // mirror of the sample and of its partner
  const void *seg_own = nullptr, *seg_partner = nullptr;  // label maps (spec 11), or null
  void *seg_out = nullptr;
};

/// Pixels per unit of the vector path: a 16-byte float16 plane store, two for float32 output.
template <typename In>
DALI_HOST_DEV constexpr int PixelsPerUnit() {
  return sizeof(In) == 4 ? 4 : 8;
}

/// A unit's position: (pair, frame, row, pixel group), the digits of its index (UnitAt).
struct UnitPos {
  int pair;
  int64_t f;
  int r, grp;
};

/// The kernel instance of a vector launch (LaunchGeometry::plain, PlainLaunch): the general one,
/// or a plain one, for box masks only or for box, Gaussian and bit masks with mask rows and
/// label maps (kernel.h).
enum PlainKind : int { kGeneral = 0, kPlainBoxes = 1, kPlainMasks = 2 };

/// A launch: the batch's shape (BatchShape, mask.h) and how the kernel covers it, planned on the
/// host (PlanLaunch); the same for every sample.
struct LaunchGeometry : BatchShape {
  LaunchGeometry() = default;
  explicit LaunchGeometry(const BatchShape &shape) : BatchShape(shape) {}
  int pairs = 0;     // (n + 1) / 2: pair p is samples p and n - 1 - p
  int vec_c = 0;     // C of the vector path (1..4); 0: the per-pixel fallback
  int unit_px = 1;   // pixels per unit (PixelsPerUnit on the vector path, else 1)
  int groups = 1;    // units per frame-row: W / unit_px
  int mask_vec = 0;  // mask rows written with 16-byte stores (aligned)
  int seg_bytes = 0;  // label maps (spec 11): bytes a label (1: uint8, 4: int32), 0: none
  int plain = kGeneral;  // PlainKind (PlainLaunch): no NaN possible, nothing resized
  int64_t units = 0;            // pairs * frames * H * groups
  int64_t units_per_block = 0;  // contiguous range of one block
  int blocks = 0, threads = 0;
  /// UnitAt(threads): what a thread adds to its unit position each step, planned here so that
  /// the kernel reads it from its parameters instead of holding it in registers.
  UnitPos step{};
};

DALI_HOST_DEV inline UnitPos UnitAt(const LaunchGeometry &g, int64_t u) {
  UnitPos s;
  const int64_t row = u / g.groups;  // (pair, frame, row)
  s.grp = static_cast<int>(u - row * g.groups);
  const int64_t frame = row / g.H;
  s.r = static_cast<int>(row - frame * g.H);
  s.pair = static_cast<int>(frame / g.frames);
  s.f = frame - int64_t(s.pair) * g.frames;
  return s;
}

constexpr int kBlockThreads = 256;
/// The kernel's __launch_bounds__ minimum of resident blocks per SM (at most 128 registers a
/// thread); benchmarks/kernel_bench.cu measures others beside it.
constexpr int kMinBlocks = 2;

/// Plans the launch of a batch of `shape`: the vector path when the shape and
/// every sample pointer allow it (`aligned`: VectorAligned; `mask_aligned`: the mask outputs
/// 16-byte aligned), `sms` x `blocks_per_sm` blocks of `threads` (the
/// device's resident blocks), fewer when the batch has fewer units than that has threads.
template <typename In>
LaunchGeometry PlanLaunch(const BatchShape &shape, bool aligned, bool mask_aligned, int sms,
                          int blocks_per_sm, int threads = kBlockThreads) {
  LaunchGeometry g(shape);
  g.pairs = (g.n + 1) / 2;
  constexpr int P = PixelsPerUnit<In>();
  const bool vec = aligned && g.C >= 1 && g.C <= 4 && g.W % P == 0;
  g.vec_c = vec ? g.C : 0;
  g.unit_px = vec ? P : 1;
  g.groups = g.W / g.unit_px;
  g.mask_vec = vec && mask_aligned;
  g.units = int64_t(g.pairs) * g.frames * g.H * g.groups;
  g.threads = threads;
  g.step = UnitAt(g, threads);
  const int64_t resident = std::max<int64_t>(1, int64_t(sms) * std::max(1, blocks_per_sm));
  const int64_t needed = std::max<int64_t>(1, (g.units + threads - 1) / threads);
  g.blocks = static_cast<int>(std::min(resident, needed));
  g.units_per_block = (g.units + g.blocks - 1) / g.blocks;
  return g;
}

/// Everything the kernel reads besides the images, by name (so that nothing can be passed in
/// the wrong order): on the GPU, device pointers into one upload; in the harness, host ones.
template <typename Out, typename In>
struct KernelArgs {
  const SampleDesc<Out, In> *samples;
  const float *tables;      // GMix factors (SampleParams::mask_offset)
  const uint8_t *bits;      // FMix / ClassMix bit masks (SampleParams::mask_offset, in bytes)
  const float *norm;        // mean[C], inv_std[C] (LaunchGeometry::normalize)
  const float *soft;        // soft target rows (TargetSpec::soft_row)
  const float *param_rows;  // 4 per sample (output_params)
  LaunchGeometry g;
};

/// Whether plain instances exist for C channels of In -> Out: for integral inputs (no NaN), and
/// not for 4 channels of float32 output, whose 2 x 32 output values of a unit spill at the
/// launch bounds (benchmarks/sass_stats.py), where the general instance's do not.
template <typename Out, typename In>
constexpr bool HasPlainInstance(int C) {
  return std::is_integral_v<In> && C >= 1 && C <= 4 && !(C == 4 && sizeof(Out) == 4);
}

/// Whether the plain instance of masks for C channels also writes mask rows and label maps:
/// not for 4 (with them its unit spills at the launch bounds, benchmarks/sass_stats.py; such
/// launches take the general instance).
constexpr bool PlainWritesMasksAndMaps(int C) { return C <= 3; }

/// Which instance a planned vector launch takes (PlainKind): a plain one for integral inputs
/// whose every 1 / std is finite (`norm`: mean[C] then inv_std[C], or null without
/// normalisation), so that no NaN can arise, where a plain instance exists for its C
/// (HasPlainInstance): kPlainBoxes when every mask is a box and there are no label maps or mask
/// outputs, kPlainMasks when every mask is a box, Gaussian or bit mask (no ResizeMix), with or
/// without maps and mask outputs (up to 3 channels: PlainWritesMasksAndMaps); else the general
/// instance.
template <typename Out, typename In>
int PlainLaunch(const LaunchGeometry &g, const SampleParams *p, bool mask_outputs,
                const float *norm) {
  if (!HasPlainInstance<Out, In>(g.vec_c)) return kGeneral;
  if ((g.seg_bytes || mask_outputs) && !PlainWritesMasksAndMaps(g.vec_c)) return kGeneral;
  for (int c = 0; norm && c < g.C; c++)
    if (!std::isfinite(norm[g.C + c])) return kGeneral;
  int plain = g.seg_bytes || mask_outputs ? kPlainMasks : kPlainBoxes;
  for (int i = 0; i < g.n; i++) {
    if (p[i].kind == kMaskGauss || p[i].kind == kMaskBits)
      plain = kPlainMasks;
    else if (p[i].kind != kMaskBox)
      return kGeneral;
  }
  return plain;
}

/// Calls f(std::integral_constant<int, C>{}, std::integral_constant<int, plain>{}) for C =
/// g.vec_c (0 to 4) and plain = g.plain (PlainKind): how the launch picks its kernel instance,
/// on the GPU and in the harness alike. The plain instances exist where HasPlainInstance says.
template <typename Out, typename In, typename F>
void WithInstance(const LaunchGeometry &g, const F &f) {
  auto call = [&](auto c) {
    if constexpr (HasPlainInstance<Out, In>(decltype(c)::value)) {
      if (g.plain == kPlainBoxes) return f(c, std::integral_constant<int, kPlainBoxes>{});
      if (g.plain == kPlainMasks) return f(c, std::integral_constant<int, kPlainMasks>{});
    }
    return f(c, std::integral_constant<int, kGeneral>{});
  };
  switch (g.vec_c) {
    case 1: return call(std::integral_constant<int, 1>{});
    case 2: return call(std::integral_constant<int, 2>{});
    case 3: return call(std::integral_constant<int, 3>{});
    case 4: return call(std::integral_constant<int, 4>{});
    default: return call(std::integral_constant<int, 0>{});
  }
}

/// The per-sample descriptors of a launch: partner, mirror flags and output rows by sample.
template <typename Out, typename In>
void BuildDescs(int n, Out *const *out, const In *const *in, float *const *mask,
                float *const *target, float *const *params, const SampleParams *p,
                const TargetSpec *t, const int *mirror, SampleDesc<Out, In> *descs,
                const void *const *seg_in = nullptr, void *const *seg_out = nullptr) {
  for (int i = 0; i < n; i++) {
    SampleDesc<Out, In> &d = descs[i];
    const int j = p[i].partner;
    d.out = out[i];
    d.own = in[i];
    d.partner = in[j];
    d.mask = mask ? mask[i] : nullptr;
    d.target = target[i];
    d.params = params ? params[i] : nullptr;
    d.p = p[i];
    d.t = t[i];
    d.flip_own = mirror ? mirror[i] : 0;
    d.flip_partner = mirror ? mirror[j] : 0;
    d.seg_own = seg_in ? seg_in[i] : nullptr;
    d.seg_partner = seg_in ? seg_in[j] : nullptr;
    d.seg_out = seg_out ? seg_out[i] : nullptr;
  }
}

/// Whether every pointer is aligned to `alignment` bytes.
template <typename T>
bool AllAligned(const T *const *ptrs, int n, int alignment = 16) {
  for (int i = 0; i < n; i++)
    if (ptrs && reinterpret_cast<uintptr_t>(ptrs[i]) % alignment != 0) return false;
  return true;
}

/// The alignment the vector path's accesses to a sample of T need: its widest vector access
/// (ChunkBytes), that of a P-pixel run of one plane (planar) or of all C channels (interleaved).
/// Every run of a sample starts a multiple of that many bytes from its start when W is a
/// multiple of P, so the sample's start is all that must be aligned: a batch of 24-byte uint8
/// runs (8 pixels x 3 channels) needs 8 bytes, not 16, whatever its per-sample byte size.
template <typename T, typename In>
int VectorAlignment(int C, bool planar) {
  const int bytes = (planar ? 1 : C) * PixelsPerUnit<In>() * int(sizeof(T));
  return bytes % 16 == 0 ? 16 : bytes % 8 == 0 ? 8 : 4;
}

/// Whether every sample's input and output start where the vector path of `shape` can read and
/// write them (VectorAlignment), the rest of its conditions being PlanLaunch's.
template <typename Out, typename In>
bool VectorAligned(const BatchShape &shape, const In *const *in, Out *const *out, int n) {
  return AllAligned(in, n, VectorAlignment<In, In>(shape.C, shape.in_planar)) &&
         AllAligned(out, n, VectorAlignment<Out, In>(shape.C, shape.out_planar));
}

}  // namespace msda

#endif  // DALI_MSDA_CSRC_MIX_LAUNCH_H_
