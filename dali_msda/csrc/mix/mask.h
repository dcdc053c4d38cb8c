// Mask and blend math shared by the CPU backend (mix.cc) and the CUDA backend (mix.cu).
//
// Everything here is evaluated identically on host and device: both sides are compiled without
// floating-point contraction (g++ -ffp-contract=off, nvcc -fmad=false), every value is computed
// in float32 in the order written, and rounding to uint8 uses the same exact trick. The integer
// geometry (boxes, centres) and the Gaussian factor tables are computed once on the host
// (params.h), so cut masks are bit-identical across backends and blends agree bit for bit too.
//
// Convention (spec section 1): M is the weight of the sample's OWN image,
//   out = M * x_self + (1 - M) * x_partner.

#ifndef DALI_MSDA_CSRC_MIX_MASK_H_
#define DALI_MSDA_CSRC_MIX_MASK_H_

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "dali/core/float16.h"
#include "dali/core/host_dev.h"

namespace msda {

enum MaskKind : int32_t {
  kMaskBox = 0,    // M = 0 inside [y0, y1) x [x0, x1), `outside` elsewhere (Mixup, CutMix, HMix)
  kMaskGauss = 1,  // M = gy[row] * gx[col], or 1 - that when `invert` (GMix)
  kMaskBits = 2,   // M = bit row * W + col of the bit mask at bits[mask_offset] (FMix: 0 or 1)
  kMaskResized = 3,  // a box mask with `outside` 1, where the partner is read resized to the
                     // box, nearest neighbour (ResizeMix): ResizedSource
  kMaskResizedLinear = 4,  // the same, resized bilinearly: ResizedLinear
};

DALI_HOST_DEV inline bool IsResized(int kind) {
  return kind == kMaskResized || kind == kMaskResizedLinear;
}

// One plain struct per sample, built on the host and copied to the GPU once per batch.
struct SampleParams {
  int32_t partner;       // index of the sample mixed in (spec: B - 1 - i)
  int32_t kind;          // MaskKind
  int32_t y0, y1;        // box rows [y0, y1); empty when y0 == y1
  int32_t x0, x1;        // box columns [x0, x1)
  float outside;         // kMaskBox: mask value outside the box
  int32_t invert;        // kMaskGauss: M = 1 - G instead of G
  int64_t mask_offset;   // kMaskGauss: gy at tables[offset, offset + H), gx at
                         // tables[offset + GaussColsOffset(H), + W); kMaskBits: the byte offset
                         // of the H x W bit mask in `bits` (MaskBit)
};

/// Where a Gaussian table's column factors start: after the H row factors, rounded up to 4 floats
/// so that they can be read 16 bytes at a time (tables are laid out 4-float aligned).
DALI_HOST_DEV inline int64_t GaussColsOffset(int H) { return (int64_t(H) + 3) / 4 * 4; }

/// Bit k (row-major pixel index) of an FMix bit mask: bit k % 8 (least significant first) of
/// byte k / 8.
DALI_HOST_DEV inline bool MaskBit(const uint8_t *bits, int64_t k) {
  return (bits[k >> 3] >> (k & 7)) & 1;
}

/// Sets bits [k0, k0 + n) of a bit mask whose bits there are 0 (MaskBit's layout) from n flags
/// of 0 or 1, eight at a time between whole bytes (no branch on a flag: a map's labels can
/// change every pixel). Eight flags b_t (0 or 1) read as a little-endian word w pack into
/// (w * 0x0102040810204080) >> 56: the product's term b_t 2^(8t + 56 - 7t) is bit 56 + t, and
/// its other terms (8t + 56 - 7s, s != t) lie outside bits 56-63 without carrying into them.
inline void PackMaskBits(const uint8_t *flags, int64_t n, uint8_t *bits, int64_t k0) {
  int64_t k = 0;
  for (; k < n && ((k0 + k) & 7); k++) bits[(k0 + k) >> 3] |= uint8_t(flags[k] << ((k0 + k) & 7));
  for (; k + 8 <= n; k += 8) {  // flag t (byte t of a little-endian word) -> bit t
    uint64_t w;
    memcpy(&w, flags + k, 8);
    bits[(k0 + k) >> 3] = uint8_t((w * 0x0102040810204080ull) >> 56);
  }
  for (; k < n; k++) bits[(k0 + k) >> 3] |= uint8_t(flags[k] << ((k0 + k) & 7));
}

/// The target row of a sample with class-index labels (spec 1), built where it is written (no
/// K-long row per sample crosses to the GPU): `fill` everywhere, `vb` at the partner's class,
/// then `va` at the sample's class (so that va wins when both classes are equal). With
/// soft-label inputs, soft_row >= 0 names the sample's row of the host-built soft targets.
struct TargetSpec {
  int32_t ya = 0, yb = 0;
  float fill = 0.0f, va = 0.0f, vb = 0.0f;
  int32_t soft_row = -1;
};

/// The shape of a batch, one struct for both backends (the GPU's launch extends it:
/// LaunchGeometry): n samples of `frames` frames (1 for images) of H x W x C, the input's and
/// the output's channels first in a frame (CHW) or last (HWC), whether the output is normalised,
/// and the targets' length K.
struct BatchShape {
  int n = 0;
  int64_t frames = 1;
  int H = 0, W = 0, C = 1;
  int in_planar = 0, out_planar = 0;
  int normalize = 0;
  int K = 0;
  DALI_HOST_DEV int64_t FrameElems() const { return int64_t(H) * W * C; }
  /// The input as rows: row q in [0, Rows()) of RowLen() elements starts at q * RowLen() and is
  /// image row q % H (HWC: frames x H rows of W x C; CHW: frames x C x H rows of W).
  DALI_HOST_DEV int RowChannels() const { return in_planar ? 1 : C; }
  DALI_HOST_DEV int64_t RowLen() const { return int64_t(W) * RowChannels(); }
  DALI_HOST_DEV int64_t Rows() const { return frames * (in_planar ? C : 1) * H; }
};

inline BatchShape MakeBatchShape(int n, int64_t frames, int H, int W, int C, bool in_planar,
                                 bool out_planar, bool normalize, int K) {
  BatchShape s;
  s.n = n;
  s.frames = frames;
  s.H = H;
  s.W = W;
  s.C = C;
  s.in_planar = in_planar;
  s.out_planar = out_planar;
  s.normalize = normalize;
  s.K = K;
  return s;
}

/// The mask value at (row, col); `tables` holds the Gaussian factors of kMaskGauss samples and
/// `bits` the masks of kMaskBits ones.
DALI_HOST_DEV inline float MaskAt(const SampleParams &p, const float *tables, const uint8_t *bits,
                                  int H, int W, int row, int col) {
  if (p.kind == kMaskBits)
    return MaskBit(bits + p.mask_offset, int64_t(row) * W + col) ? 1.0f : 0.0f;
  if (p.kind == kMaskGauss) {
    float g = tables[p.mask_offset + row] * tables[p.mask_offset + GaussColsOffset(H) + col];
    return p.invert ? 1.0f - g : g;
  }
  bool inside = row >= p.y0 && row < p.y1 && col >= p.x0 && col < p.x1;
  return inside ? 0.0f : p.outside;
}

/// ResizeMix's nearest neighbour along one axis: output index `i` of a box [box0, box0 + len)
/// over a source axis of `size` reads source ((i - box0) size) / len, in integers.
DALI_HOST_DEV inline int NearestSource(int i, int box0, int len, int size) {
  return static_cast<int>(int64_t(i - box0) * size / len);
}

/// ResizeMix (spec 10): the partner pixel shown at (row, col) inside the box of a kMaskResized
/// sample: the whole partner (H x W) resized to the box (h x w) by nearest neighbour, source
/// row ((row - y0) H) / h and column ((col - x0) W) / w, in integers; `flip`: the partner is
/// mirrored before it is resized (source column W - 1 - that).
DALI_HOST_DEV inline void ResizedSource(const SampleParams &p, int H, int W, int row, int col,
                                        int flip, int *src_row, int *src_col) {
  *src_row = NearestSource(row, p.y0, p.y1 - p.y0, H);
  const int c = NearestSource(col, p.x0, p.x1 - p.x0, W);
  *src_col = flip ? W - 1 - c : c;
}

/// Whether the mixed label map (spec 11) takes the sample's own label at a pixel of mask value
/// m: where m >= 0.5 (a tie included), else its partner's.
DALI_HOST_DEV inline bool TakesOwnLabel(float m) { return m >= 0.5f; }

/// Where the mixed label map (spec 11) reads output pixel (row, col) of a sample: its own map
/// (*from_partner false) where `own` (TakesOwnLabel of the mask there), else its partner's; at
/// (*src_row, *src_col) of that map, each map read with its image's mirror, a ResizeMix
/// partner's resized into the box by nearest neighbour.
DALI_HOST_DEV inline void SegSource(const SampleParams &p, int H, int W, int row, int col,
                                    bool own, int flip_own, int flip_partner, bool *from_partner,
                                    int *src_row, int *src_col);

/// Bilinear taps along one axis (spec 10; torch's F.interpolate(mode="bilinear",
/// align_corners=False)): output index `i` of a box [box0, box0 + len) over a source axis of
/// `size` reads source i0 with weight 1 - w1 and i1 = min(i0 + 1, size - 1) with weight w1, the
/// source coordinate (i - box0 + 1/2) size / len - 1/2 clamped at 0, all in float32.
struct LinearTaps {
  int i0, i1;
  float w1;
};

DALI_HOST_DEV inline LinearTaps LinearSource(int i, int box0, int len, int size) {
  const float scale = static_cast<float>(size) / static_cast<float>(len);
  float s = (static_cast<float>(i - box0) + 0.5f) * scale - 0.5f;
  s = s > 0.0f ? s : 0.0f;
  LinearTaps t;
  t.i0 = static_cast<int>(s);  // floor: s >= 0 (and < size - 1/2)
  t.i0 = t.i0 < size - 1 ? t.i0 : size - 1;
  t.i1 = t.i0 + 1 < size ? t.i0 + 1 : size - 1;
  t.w1 = s - static_cast<float>(t.i0);
  return t;
}

/// Where ResizeMix's bilinear value at output (row, col) inside the box reads: row taps `ty`,
/// column taps `tx`, and the source columns c0, c1 of tx.i0, tx.i1 (mirrored where `flip`: the
/// partner is mirrored before it is resized). Computed once for all of a pixel's channels.
struct LinearPixel {
  LinearTaps ty, tx;
  int c0, c1;
};

DALI_HOST_DEV inline LinearPixel ResizedLinearSource(const SampleParams &p, int H, int W, int row,
                                                     int col, int flip) {
  LinearPixel t;
  t.ty = LinearSource(row, p.y0, p.y1 - p.y0, H);
  t.tx = LinearSource(col, p.x0, p.x1 - p.x0, W);
  t.c0 = flip ? W - 1 - t.tx.i0 : t.tx.i0;
  t.c1 = flip ? W - 1 - t.tx.i1 : t.tx.i1;
  return t;
}

/// The bilinear value at the taps `t` (ResizedLinearSource); `at(src_row, src_col)` reads the
/// partner (float32).
template <typename At>
DALI_HOST_DEV inline float LinearBlend(const LinearPixel &t, const At &at) {
  const float wy0 = 1.0f - t.ty.w1, wx0 = 1.0f - t.tx.w1;
  return wy0 * (wx0 * at(t.ty.i0, t.c0) + t.tx.w1 * at(t.ty.i0, t.c1)) +
         t.ty.w1 * (wx0 * at(t.ty.i1, t.c0) + t.tx.w1 * at(t.ty.i1, t.c1));
}

/// ResizeMix, bilinear: the float32 value of the resized partner at (row, col) inside the box;
/// `at(src_row, src_col)` reads the partner (float32); `flip` mirrors it before resizing.
template <typename At>
DALI_HOST_DEV inline float ResizedLinear(const SampleParams &p, int H, int W, int row, int col,
                                         int flip, const At &at) {
  return LinearBlend(ResizedLinearSource(p, H, W, row, col, flip), at);
}

DALI_HOST_DEV inline void SegSource(const SampleParams &p, int H, int W, int row, int col,
                                    bool own, int flip_own, int flip_partner, bool *from_partner,
                                    int *src_row, int *src_col) {
  *from_partner = !own;
  *src_row = row;
  if (!*from_partner) {
    *src_col = flip_own ? W - 1 - col : col;
  } else if (IsResized(p.kind) && row >= p.y0 && row < p.y1 && col >= p.x0 && col < p.x1) {
    ResizedSource(p, H, W, row, col, flip_partner, src_row, src_col);
  } else {
    *src_col = flip_partner ? W - 1 - col : col;
  }
}

/// The blend of spec section 1, in float32, in this exact order.
DALI_HOST_DEV inline float Blend(float m, float own, float partner) {
  return m * own + (1.0f - m) * partner;
}

/// The mixed value of one element (spec 1 and 7): where the mask is exactly 1 the own value,
/// where exactly 0 the partner's (the other one is not read, so a NaN or -0.0 in it does not
/// leak), elsewhere the blend.
DALI_HOST_DEV inline float MixValue(float m, float own, float partner) {
  return m == 1.0f ? own : m == 0.0f ? partner : Blend(m, own, partner);
}

/// Fused normalisation (spec 7): (v - mean) * inv_std, inv_std the float32 reciprocal of std.
DALI_HOST_DEV inline float Normalize(float v, float mean, float inv_std) {
  return (v - mean) * inv_std;
}

/// Canonical NaNs (spec 7): every NaN a conversion produces is the positive quiet NaN with no
/// payload, on both backends (x86 propagates payloads through arithmetic, GPUs do not).
constexpr uint32_t kCanonicalNaN32 = 0x7fc00000u;
constexpr uint16_t kCanonicalNaN16 = 0x7e00u;

/// float32 -> output type: identity for float, round-to-nearest-even for float16, and
/// saturate + round-half-to-even for uint8 (NaN -> 0). Adding and subtracting 1.5 * 2^23 rounds
/// a float in [0, 255] to the nearest integer with ties to even, exactly as rint() does, on any
/// CPU (SSE2 vectorises it) and on the GPU.
template <typename Out>
DALI_HOST_DEV inline Out ConvertOut(float v);

template <>
DALI_HOST_DEV inline float ConvertOut<float>(float v) {
#ifdef __CUDA_ARCH__
  return v != v ? __int_as_float(static_cast<int>(kCanonicalNaN32)) : v;
#else
  float nan;
  std::memcpy(&nan, &kCanonicalNaN32, 4);
  return v != v ? nan : v;
#endif
}

template <>
DALI_HOST_DEV inline uint8_t ConvertOut<uint8_t>(float v) {
  v = v >= 0.0f ? v : 0.0f;  // also maps NaN to 0
  v = v <= 255.0f ? v : 255.0f;
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23 (no -ffast-math: never reassociated)
  float r = (v + kMagic) - kMagic;
  return static_cast<uint8_t>(static_cast<int>(r));
}

#ifndef __CUDA_ARCH__
// Host float <-> half by integer arithmetic (F. Giesen's branch-free conversions, round to
// nearest even): exact like the GPU's __float2half_rn / __half2float and NumPy's float16, and,
// unlike a library call per element, vectorisable by the compiler.
inline uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float BitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t FloatToHalfBits(float f) {
  const uint32_t f32_inf = 255u << 23, f16_max = (127u + 16) << 23;
  const uint32_t denorm_magic = ((127u - 15) + (23 - 10) + 1) << 23;
  uint32_t x = FloatBits(f);
  const uint32_t sign = x & 0x80000000u;
  x ^= sign;
  uint32_t normal = x + ((15u - 127u) << 23) + 0xfff + ((x >> 13) & 1);  // rounded, rebiased
  uint32_t denormal = FloatBits(BitsFloat(x) + BitsFloat(denorm_magic)) - denorm_magic;
  // select with masks, not branches, so that loops over this vectorise
  const uint32_t big = 0u - uint32_t(x >= f16_max), nan = 0u - uint32_t(x > f32_inf);
  const uint32_t small = 0u - uint32_t(x < (113u << 23));
  const uint32_t finite = (small & denormal) | (~small & (normal >> 13));
  const uint32_t o = (big & 0x7c00u) | (~big & finite);
  return static_cast<uint16_t>((nan & kCanonicalNaN16) | (~nan & (o | (sign >> 16))));
}

inline float HalfBitsToFloat(uint16_t h) {
  const uint32_t shifted_exp = 0x7c00u << 13;
  uint32_t o = (h & 0x7fffu) << 13;
  const uint32_t exp = shifted_exp & o;
  o += (127u - 15) << 23;
  uint32_t inf_nan = o + ((128u - 16) << 23);
  uint32_t denormal = FloatBits(BitsFloat(o + (1u << 23)) - BitsFloat(113u << 23));
  const uint32_t special = 0u - uint32_t(exp == shifted_exp), zero = 0u - uint32_t(exp == 0);
  o = (special & inf_nan) | (zero & denormal) | (~(special | zero) & o);
  return BitsFloat(o | ((h & 0x8000u) << 16));
}
#endif

template <>
DALI_HOST_DEV inline dali::float16 ConvertOut<dali::float16>(float v) {
#ifdef __CUDA_ARCH__
  return v != v ? dali::float16(__ushort_as_half(kCanonicalNaN16)) : dali::float16(v);
#else
  uint16_t bits = FloatToHalfBits(v);
  dali::float16 h;
  std::memcpy(&h, &bits, 2);
  return h;
#endif
}

template <typename In>
DALI_HOST_DEV inline float LoadIn(In v) {
  return static_cast<float>(v);
}

template <>
DALI_HOST_DEV inline float LoadIn<dali::float16>(dali::float16 v) {
#ifdef __CUDA_ARCH__
  return static_cast<float>(v);
#else
  uint16_t bits;
  std::memcpy(&bits, &v, 2);
  return HalfBitsToFloat(bits);
#endif
}

/// One output element (spec 1 and 7), the same function on both backends: the mixed value
/// (MixValue), normalised when `kNorm`, converted. Without normalisation and with In == Out, the
/// value taken where the mask is exactly 1 or 0 is copied bit for bit (a NaN keeps its payload).
/// `a` is not read when m == 0, nor `b` when m == 1 (callers may pass anything there).
template <bool kNorm, typename Out, typename In>
DALI_HOST_DEV inline Out MixElement(float m, In a, In b, float mean, float inv_std) {
  if constexpr (!kNorm && std::is_same_v<Out, In>) {
    if (m == 1.0f) return a;
    if (m == 0.0f) return b;
  }
  float v = MixValue(m, LoadIn(a), LoadIn(b));
  if constexpr (kNorm) v = Normalize(v, mean, inv_std);
  return ConvertOut<Out>(v);
}

}  // namespace msda

#endif  // DALI_MSDA_CSRC_MIX_MASK_H_
