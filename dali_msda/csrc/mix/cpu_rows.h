// The CPU backend's row loops (mix.cc runs them on DALI's thread pool): each gives the bits of
// the per-element function of mask.h (MixElement), which the GPU kernel evaluates.
//
// The plain path (no normalisation, mirror or layout change) mixes rows as stored: within a row
// the mask is constant or piecewise constant for box masks (Mixup, CutMix, HMix) and bit masks
// (FMix, ClassMix), so a row is split into spans that are copied (M = 1: own image, M = 0:
// partner) or blended with one weight (a bit-mask row from its first short run on takes a
// select per element instead); GMix computes the weight per pixel from the two Gaussian
// factor tables. The fused path (MixRowsFused) gathers a row's channels, mirrored, into buffers
// and writes them normalised in the output's layout. Label maps: MixSeg; mask outputs: WriteMask.

#ifndef DALI_MSDA_CSRC_MIX_CPU_ROWS_H_
#define DALI_MSDA_CSRC_MIX_CPU_ROWS_H_

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <type_traits>
#include <vector>

#include "dali/core/float16.h"

#include "cpu_clones.h"
#include "mask.h"

namespace msda {
namespace cpu {

using ::dali::float16;

constexpr int64_t kTaskElems = 1 << 16;

// ---- span loops, portable: auto-vectorised, compiled twice (AVX2 and the x86-64 baseline, SSE2)
// with the loader picking one for the CPU it runs on (cpu_clones.h). Each is a function of its
// own with restrict pointers, which the vectoriser handles reliably.

template <typename Out, typename In>
MSDA_CPU_CLONES void ConvertSpanAuto(Out *__restrict out, const In *__restrict in, int64_t n) {
  for (int64_t k = 0; k < n; k++) out[k] = ConvertOut<Out>(LoadIn(in[k]));
}

template <typename Out, typename In>
MSDA_CPU_CLONES void BlendSpanAuto(Out *__restrict out, const In *__restrict own,
                                   const In *__restrict partner, int64_t n, float m) {
  const float om = 1.0f - m;
  for (int64_t k = 0; k < n; k++)
    out[k] = ConvertOut<Out>(m * LoadIn(own[k]) + om * LoadIn(partner[k]));
}

/// GMix row: m = gy * gx[k] (or 1 - that), the same product as MaskAt(), then MixElement
/// (where the product is exactly 1 or 0 the value is taken, not blended).
template <bool kInvert, typename Out, typename In>
MSDA_CPU_CLONES void GaussBlendSpanAuto(Out *__restrict out, const In *__restrict own,
                                        const In *__restrict partner, float gy,
                                        const float *__restrict gx, int64_t n) {
  for (int64_t k = 0; k < n; k++) {
    float m = gy * gx[k];
    if (kInvert) m = 1.0f - m;
    out[k] = MixElement<false, Out, In>(m, own[k], partner[k], 0.0f, 1.0f);
  }
}

/// The unsigned integer of N bytes.
template <int N>
using UIntOf = std::conditional_t<N == 1, uint8_t, std::conditional_t<N == 2, uint16_t, uint32_t>>;

/// a if take_a, else b, for an integer (a label, or a value's bits) without a branch: a map's
/// labels may change every pixel, and so may the mask of a ClassMix or FMix sample.
template <typename T>
inline T SelectBits(bool take_a, T a, T b) {
  using U = std::make_unsigned_t<T>;
  const U s = static_cast<U>(0u - unsigned(take_a));
  return static_cast<T>((U(a) & s) | (U(b) & static_cast<U>(~s)));
}

/// A bit-mask row with short runs (ClassMix on fine label maps): out[k] = own[k] where
/// take_own[k] is 1, else partner[k], converted as ConvertSpan converts (same-type values
/// copied bit for bit): MixElement at M = 1 or 0, without a branch per element.
template <typename Out, typename In>
MSDA_CPU_CLONES void SelectSpanAuto(Out *__restrict out, const In *__restrict own,
                                    const In *__restrict partner,
                                    const uint8_t *__restrict take_own, int64_t n) {
  if constexpr (std::is_same_v<Out, In>) {
    using U = UIntOf<int(sizeof(In))>;
    for (int64_t k = 0; k < n; k++) {
      U x, y;
      memcpy(&x, own + k, sizeof(U));
      memcpy(&y, partner + k, sizeof(U));
      const U v = SelectBits<U>(take_own[k], x, y);
      memcpy(out + k, &v, sizeof(U));
    }
  } else {
    for (int64_t k = 0; k < n; k++) {
      const float x = LoadIn(own[k]), y = LoadIn(partner[k]);
      out[k] = ConvertOut<Out>(take_own[k] ? x : y);
    }
  }
}

#if MSDA_X86_DISPATCH
// ---- span loops for float16 data on CPUs with AVX2 + F16C: the compiler does not vectorise
// the portable half <-> float bit arithmetic well, the hardware converts 8 lanes in one
// instruction. Conversions round to nearest even explicitly (not through MXCSR), exactly like
// ConvertOut / LoadIn, which also handle the tails.
namespace v3 {
#define MSDA_V3 __attribute__((target("avx2,f16c")))

MSDA_V3 inline __m256 Load8(const uint8_t *p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}
MSDA_V3 inline __m256 Load8(const float *p) { return _mm256_loadu_ps(p); }
MSDA_V3 inline __m256 Load8(const float16 *p) {
  return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
/// NaN lanes -> the canonical NaN (spec 7), as ConvertOut does.
MSDA_V3 inline __m256 CanonicalNaN(__m256 v) {
  return _mm256_blendv_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(int(kCanonicalNaN32))),
                          _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}
MSDA_V3 inline void Store8(float *p, __m256 v) { _mm256_storeu_ps(p, CanonicalNaN(v)); }
MSDA_V3 inline __m128i ToHalf8(__m256 v) {
  return _mm256_cvtps_ph(CanonicalNaN(v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
MSDA_V3 inline void Store8(float16 *p, __m256 v) { _mm_storeu_si128((__m128i *)p, ToHalf8(v)); }
/// 8 lane masks of 32 bits -> 8 of 16 bits.
MSDA_V3 inline __m128i Narrow(__m256 mask) {
  const __m256i w = _mm256_castps_si256(mask);
  return _mm_packs_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
}

/// MixValue on 8 lanes: the own value where m == 1, the partner's where m == 0, else the blend;
/// `is1` / `is0` keep the lane masks for KeepCopiedHalves.
struct Mixed8 {
  __m256 v, is1, is0;
};
/// Blend on 8 lanes: m a + (1 - m) b, in MixValue's order of operations.
MSDA_V3 inline __m256 Blend8(__m256 m, __m256 a, __m256 b) {
  const __m256 om = _mm256_sub_ps(_mm256_set1_ps(1.0f), m);
  return _mm256_add_ps(_mm256_mul_ps(m, a), _mm256_mul_ps(om, b));
}
MSDA_V3 inline Mixed8 MixValue8(__m256 m, __m256 a, __m256 b) {
  Mixed8 r;
  r.is1 = _mm256_cmp_ps(m, _mm256_set1_ps(1.0f), _CMP_EQ_OQ);
  r.is0 = _mm256_cmp_ps(m, _mm256_setzero_ps(), _CMP_EQ_OQ);
  r.v = _mm256_blendv_ps(_mm256_blendv_ps(Blend8(m, a, b), b, r.is0), a, r.is1);
  return r;
}

/// float16 in and out without normalisation: the values taken where m is 1 or 0 are copied bit
/// for bit over the converted ones (MixElement's rule).
MSDA_V3 inline __m128i KeepCopiedHalves(__m128i h, const float16 *a, const float16 *b,
                                        const Mixed8 &x) {
  h = _mm_blendv_epi8(h, _mm_loadu_si128((const __m128i *)b), Narrow(x.is0));
  return _mm_blendv_epi8(h, _mm_loadu_si128((const __m128i *)a), Narrow(x.is1));
}
MSDA_V3 inline void Store8(uint8_t *p, __m256 v) {  // NaN -> 0, saturate, round half to even
  v = _mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(255.0f));
  v = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256i i = _mm256_cvttps_epi32(v);
  __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
  _mm_storel_epi64((__m128i *)p, _mm_packus_epi16(w, w));
}

template <typename Out, typename In>
MSDA_V3 void ConvertSpan(Out *out, const In *in, int64_t n) {
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) Store8(out + k, Load8(in + k));
  for (; k < n; k++) out[k] = ConvertOut<Out>(LoadIn(in[k]));
}

template <typename Out, typename In>
MSDA_V3 void BlendSpan(Out *out, const In *own, const In *partner, int64_t n, float m) {
  const float om = 1.0f - m;
  const __m256 vm = _mm256_set1_ps(m), vom = _mm256_set1_ps(om);
  int64_t k = 0;
  for (; k + 8 <= n; k += 8)
    Store8(out + k, _mm256_add_ps(_mm256_mul_ps(vm, Load8(own + k)),
                                  _mm256_mul_ps(vom, Load8(partner + k))));
  for (; k < n; k++) out[k] = ConvertOut<Out>(m * LoadIn(own[k]) + om * LoadIn(partner[k]));
}

template <bool kInvert, typename Out, typename In>
MSDA_V3 void GaussBlendSpan(Out *out, const In *own, const In *partner, float gy, const float *gx,
                            int64_t n) {
  const __m256 vgy = _mm256_set1_ps(gy), one = _mm256_set1_ps(1.0f);
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    __m256 m = _mm256_mul_ps(vgy, _mm256_loadu_ps(gx + k));
    if (kInvert) m = _mm256_sub_ps(one, m);
    const Mixed8 x = MixValue8(m, Load8(own + k), Load8(partner + k));
    if constexpr (std::is_same_v<Out, float16> && std::is_same_v<In, float16>)
      _mm_storeu_si128((__m128i *)(out + k), KeepCopiedHalves(ToHalf8(x.v), own + k,
                                                              partner + k, x));
    else
      Store8(out + k, x.v);
  }
  for (; k < n; k++) {
    float m = gy * gx[k];
    if (kInvert) m = 1.0f - m;
    out[k] = MixElement<false, Out, In>(m, own[k], partner[k], 0.0f, 1.0f);
  }
}
}  // namespace v3

/// Whether the AVX2 + F16C loops (MSDA_V3) may run: the CPU has them and the environment
/// variable DALI_MSDA_NO_F16C=1 does not turn them off (for tests of the portable path).
inline bool UseV3() {
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") &&
                         !std::getenv("DALI_MSDA_NO_F16C");
  return ok;
}
/// Use the AVX2 + F16C loops when float16 is involved and the CPU has them.
template <typename Out, typename In>
bool UseHalfV3() {
  if constexpr (std::is_same_v<Out, float16> || std::is_same_v<In, float16>) return UseV3();
  return false;
}
#endif

// ---- span operations, each giving the bits of the generic Blend() of mask.h

template <typename Out, typename In>
void ConvertSpan(Out *out, const In *in, int64_t n) {
  if constexpr (std::is_same_v<Out, In>) {
    std::memcpy(out, in, n * sizeof(Out));
  } else {
#if MSDA_X86_DISPATCH
    if (UseHalfV3<Out, In>()) return v3::ConvertSpan<Out, In>(out, in, n);
#endif
    ConvertSpanAuto<Out, In>(out, in, n);
  }
}

/// out = m * self + (1 - m) * other over a span with one mask value m.
template <typename Out, typename In>
void BlendSpan(Out *out, const In *own, const In *partner, int64_t n, float m) {
  if (m == 1.0f) return ConvertSpan<Out, In>(out, own, n);
  if (m == 0.0f) return ConvertSpan<Out, In>(out, partner, n);
#if MSDA_X86_DISPATCH
  if (UseHalfV3<Out, In>()) return v3::BlendSpan<Out, In>(out, own, partner, n, m);
#endif
  BlendSpanAuto<Out, In>(out, own, partner, n, m);
}

template <bool kInvert, typename Out, typename In>
void GaussBlendSpan(Out *out, const In *own, const In *partner, float gy, const float *gx,
                    int64_t n) {
#if MSDA_X86_DISPATCH
  if (UseHalfV3<Out, In>())
    return v3::GaussBlendSpan<kInvert, Out, In>(out, own, partner, gy, gx, n);
#endif
  GaussBlendSpanAuto<kInvert, Out, In>(out, own, partner, gy, gx, n);
}

/// ResizeMix, nearest: the partner's source column (ResizedSource's, mirrored with `flip`) of
/// each box column into `cols`, the same on every row (the images' and the label maps' tables).
inline void NearestColumns(const SampleParams &p, int H, int W, int flip,
                           std::vector<int> &cols) {
  cols.resize(std::max(0, p.x1 - p.x0));
  for (size_t k = 0; k < cols.size(); k++) {
    int sr;
    ResizedSource(p, H, W, p.y0, p.x0 + int(k), flip, &sr, &cols[k]);
  }
}

/// ResizeMix: where each box column of a sample reads the partner, the same on every row, so
/// found once per call (MixRows, MixRowsFused) rather than per pixel and channel: nearest, the
/// source column into `cols` (NearestColumns); bilinear, the column taps and source columns
/// (ResizedLinearSource's) into `taps`; both mirrored with `flip`.
inline void ResizedColumns(const SampleParams &p, const BatchShape &g, int flip,
                           std::vector<int> &cols, std::vector<LinearPixel> &taps) {
  if (p.kind != kMaskResizedLinear) return NearestColumns(p, g.H, g.W, flip, cols);
  taps.resize(std::max(0, p.x1 - p.x0));
  for (size_t k = 0; k < taps.size(); k++)
    taps[k] = ResizedLinearSource(p, g.H, g.W, p.y0, p.x0 + int(k), flip);
}

/// ResizeMix: columns [x0, x1) of row r (at `o`, a row of the output) from the partner resized to
/// the box (spec 10); `frame_rows` is the partner's row q - r (the first row of its frame or
/// channel plane); `cols` / `taps`: the box columns' sources (ResizedColumns, unmirrored). The
/// values are taken, not blended (M = 0), as MixElement takes them.
template <typename Out, typename In>
void ResizedSpan(Out *o, const In *frame_rows, const SampleParams &p, const BatchShape &g, int r,
                 const int *cols, const LinearPixel *taps) {
  const int64_t len = g.RowLen();
  const int inner = g.RowChannels(), n = p.x1 - p.x0;
  Out *dst = o + int64_t(p.x0) * inner;
  if (p.kind == kMaskResizedLinear) {  // bilinear, rounded to the input type (spec 10)
    const LinearTaps ty = LinearSource(r, p.y0, p.y1 - p.y0, g.H);
    for (int c = 0; c < n; c++, dst += inner) {
      LinearPixel t = taps[c];
      t.ty = ty;
      for (int k = 0; k < inner; k++) {
        const In v = ConvertOut<In>(LinearBlend(t, [&](int sr, int sc) {
          return LoadIn(frame_rows[sr * len + int64_t(sc) * inner + k]);
        }));
        dst[k] = MixElement<false, Out, In>(0.0f, v, v, 0.0f, 1.0f);
      }
    }
    return;
  }
  const In *row = frame_rows + NearestSource(r, p.y0, p.y1 - p.y0, g.H) * len;
  for (int c = 0; c < n; c++, dst += inner) {
    const In *src = row + int64_t(cols[c]) * inner;
    for (int k = 0; k < inner; k++)
      dst[k] = MixElement<false, Out, In>(0.0f, src[k], src[k], 0.0f, 1.0f);
  }
}

/// The end of the run of equal bits of a bit-mask row that starts at column c0 (`row`: the
/// row's first bit index): bit by bit to a byte boundary, then whole bytes of equal bits.
inline int BitRunEnd(const uint8_t *bits, int64_t row, int c0, int W) {
  const bool v = MaskBit(bits, row + c0);
  const uint8_t same = v ? 0xFF : 0x00;
  int c1 = c0 + 1;
  while (c1 < W) {
    const int64_t k = row + c1;
    if ((k & 7) == 0 && c1 + 8 <= W && bits[k >> 3] == same) {
      c1 += 8;
    } else if (MaskBit(bits, k) == v) {
      c1++;
    } else {
      break;
    }
  }
  return c1;
}

/// Runs of equal bits shorter than this many pixels are not copied span by span: from the first
/// such run a bit-mask row takes a select per element (SelectSpanAuto), which costs less than a
/// copy per run where the runs are short (ClassMix on fine label maps).
constexpr int kMinSpanPixels = 16;

/// Rows [q0, q1) of one sample (see Geometry for the row numbering).
template <typename Out, typename In>
void MixRows(Out *out, const In *own, const In *partner, const SampleParams &p,
             const float *tables, const uint8_t *bits, const BatchShape &g, int64_t q0,
             int64_t q1) {
  const int64_t len = g.RowLen();
  const int inner = g.RowChannels();
  // GMix: the column factors repeated over the channels, so that the row loop vectorises
  std::vector<float> gx(p.kind == kMaskGauss ? len : 0);
  std::vector<uint8_t> take;  // bit masks of short runs: 1 where the own value is taken
  std::vector<int> cols;          // ResizeMix: the box columns' sources (ResizedColumns)
  std::vector<LinearPixel> taps;
  if (IsResized(p.kind)) ResizedColumns(p, g, 0, cols, taps);
  for (int64_t k = 0; k < static_cast<int64_t>(gx.size()); k++)
    gx[k] = tables[p.mask_offset + GaussColsOffset(g.H) + k / inner];
  auto misses_box = [&](int64_t q) {
    const int r = q % g.H;
    return r < p.y0 || r >= p.y1 || p.x0 == p.x1;
  };
  for (int64_t q = q0; q < q1;) {
    const int r = q % g.H;
    Out *o = out + q * len;
    const In *a = own + q * len, *b = partner + q * len;
    if (p.kind == kMaskBits) {  // a span per run of equal bits (FMix: runs of 0 / 1)
      const uint8_t *mask = bits + p.mask_offset;
      const int64_t row = int64_t(r) * g.W;
      for (int c0 = 0; c0 < g.W;) {
        const int c1 = BitRunEnd(mask, row, c0, g.W);
        const int64_t k0 = int64_t(c0) * inner;
        if (c1 - c0 < kMinSpanPixels && c1 < g.W) {  // a short run: selects to the row's end
          take.resize(len);
          for (int c = c0; c < g.W; c++)
            std::fill_n(take.data() + int64_t(c) * inner, inner,
                        uint8_t(MaskBit(mask, row + c)));
          SelectSpanAuto<Out, In>(o + k0, a + k0, b + k0, take.data() + k0, len - k0);
          break;
        }
        BlendSpan(o + k0, a + k0, b + k0, int64_t(c1 - c0) * inner,
                  MaskBit(mask, row + c0) ? 1.0f : 0.0f);
        c0 = c1;
      }
      q++;
    } else if (p.kind == kMaskGauss) {
      const float gy = tables[p.mask_offset + r];
      if (p.invert)
        GaussBlendSpan<true>(o, a, b, gy, gx.data(), len);
      else
        GaussBlendSpan<false>(o, a, b, gy, gx.data(), len);
      q++;
    } else if (misses_box(q)) {  // consecutive rows that miss the box are one contiguous span
      int64_t end = q + 1;
      while (end < q1 && misses_box(end)) end++;
      BlendSpan(o, a, b, (end - q) * len, p.outside);
      q = end;
    } else {
      const int64_t k0 = int64_t(p.x0) * inner, k1 = int64_t(p.x1) * inner;
      BlendSpan(o, a, b, k0, p.outside);
      if (IsResized(p.kind))  // inside the box: the partner resized
        ResizedSpan(o, partner + (q - r) * len, p, g, r, cols.data(), taps.data());
      else
        ConvertSpan(o + k0, b + k0, k1 - k0);  // inside the box: the partner, exactly
      BlendSpan(o + k1, a + k1, b + k1, len - k1, p.outside);
      q++;
    }
  }
}

// ---- the fused path: normalisation, mirror and / or a layout change (HWC <-> CHW)

/// Per-thread row buffers of the fused path: the mask row, the two sources' rows with the
/// channels separated (C rows of W), and the output's channel rows where the output is
/// interleaved (HWC).
struct RowBuffers {
  std::vector<float> mask;
  std::vector<char> a, b, out;
  std::vector<int> resized_cols;          // ResizeMix, nearest: ResizedColumns
  std::vector<LinearPixel> resized_taps;  // ResizeMix, bilinear: ResizedColumns
  template <typename Out, typename In>
  void Reserve(int W, int C) {
    const size_t n = size_t(W) * C * sizeof(In), n_out = size_t(W) * C * sizeof(Out);
    if (mask.size() < size_t(W)) mask.assign(W, 0.0f);
    if (a.size() < n) a.assign(n, 0);
    if (b.size() < n) b.assign(n, 0);
    if (out.size() < n_out) out.assign(n_out, 0);
  }
};

/// Output columns [a, b) of row r that need the sample or the partner: a box row needs the
/// partner inside the box and the sample outside it (unless the outside weight is 0 or 1; a
/// resized partner is gathered separately: GatherResizedRow); a Gaussian or bit mask needs
/// both everywhere.
struct ColumnNeeds {
  int own_a0, own_a1, own_b0, own_b1;  // up to two ranges for the sample
  int partner_a0, partner_a1;                  // one range for the partner
};

inline ColumnNeeds NeedsOfRow(const SampleParams &p, int r, int c0, int c1) {
  ColumnNeeds n{c0, c1, c1, c1, c0, c1};
  if (p.kind != kMaskBox && !IsResized(p.kind)) return n;
  const bool row_in_box = r >= p.y0 && r < p.y1 && p.x0 < p.x1;
  const int x0 = row_in_box ? std::clamp(p.x0, c0, c1) : c1;
  const int x1 = row_in_box ? std::clamp(p.x1, c0, c1) : c1;
  if (p.outside == 0.0f) {  // the sample: everything outside [x0, x1), if it weighs there
    n.own_a0 = n.own_a1 = n.own_b0 = n.own_b1 = c1;
  } else {
    n.own_a0 = c0;
    n.own_a1 = x0;
    n.own_b0 = x1;
    n.own_b1 = c1;
  }
  if (p.outside == 1.0f) {  // the partner: the box, or everything when the outside is not 1
    n.partner_a0 = x0;
    n.partner_a1 = x1;
  }
  if (IsResized(p.kind)) n.partner_a0 = n.partner_a1 = c1;
  return n;
}

/// The three channels of n interleaved pixels at px, into the rows c0, c1, c2: pixel k to column
/// k (Deinterleave3) or to column n - 1 - k (Deinterleave3Reversed: a mirrored row, read
/// forwards and stored backwards, which the compiler vectorises where reading backwards it did
/// not). Plain copies: the bytes are moved, not changed.
template <typename In>
MSDA_CPU_CLONES void Deinterleave3(In *__restrict c0, In *__restrict c1, In *__restrict c2,
                                   const In *__restrict px, int n) {
  for (int k = 0; k < n; k++) {
    c0[k] = px[3 * k];
    c1[k] = px[3 * k + 1];
    c2[k] = px[3 * k + 2];
  }
}

template <typename In>
MSDA_CPU_CLONES void Deinterleave3Reversed(In *__restrict c0, In *__restrict c1,
                                           In *__restrict c2, const In *__restrict px, int n) {
  In *e0 = c0 + n - 1, *e1 = c1 + n - 1, *e2 = c2 + n - 1;
  for (int k = 0; k < n; k++) {
    e0[-k] = px[3 * k];
    e1[-k] = px[3 * k + 1];
    e2[-k] = px[3 * k + 2];
  }
}

/// n pixels of three channel rows c0, c1, c2, interleaved at px (Deinterleave3's inverse): the
/// bytes are moved, not changed.
template <typename T>
MSDA_CPU_CLONES void Interleave3(T *__restrict px, const T *__restrict c0, const T *__restrict c1,
                                 const T *__restrict c2, int n) {
  for (int k = 0; k < n; k++) {
    px[3 * k] = c0[k];
    px[3 * k + 1] = c1[k];
    px[3 * k + 2] = c2[k];
  }
}

/// Columns [c0, c1) of frame-row (f, r) of x, read with mirror `flip`, into C channel rows of
/// W elements at dst: one pass over the source row.
template <typename In>
void GatherRow(In *__restrict dst, const In *__restrict x, const BatchShape &g, int64_t f,
               int r, int flip, int c0, int c1) {
  if (c0 >= c1) return;
  const int W = g.W, C = g.C;
  if (g.in_planar) {
    for (int ch = 0; ch < C; ch++) {
      const In *row = x + f * g.FrameElems() + (int64_t(ch) * g.H + r) * W;
      In *d = dst + int64_t(ch) * W;
      if (flip) {
        for (int c = c0; c < c1; c++) d[c] = row[W - 1 - c];
      } else {
        std::memcpy(d + c0, row + c0, (c1 - c0) * sizeof(In));
      }
    }
    return;
  }
  const In *row = x + f * g.FrameElems() + int64_t(r) * W * C;
  if (C == 3) {  // the common case, in loops the compiler vectorises
    In *ch0 = dst + c0, *ch1 = dst + W + c0, *ch2 = dst + 2 * W + c0;
    if (flip)  // columns [c0, c1) show source pixels W - c1 .. W - 1 - c0, in reverse
      Deinterleave3Reversed(ch0, ch1, ch2, row + int64_t(W - c1) * 3, c1 - c0);
    else
      Deinterleave3(ch0, ch1, ch2, row + int64_t(c0) * 3, c1 - c0);
    return;
  }
  for (int c = c0; c < c1; c++) {
    const In *px = row + int64_t(flip ? W - 1 - c : c) * C;
    for (int ch = 0; ch < C; ch++) dst[int64_t(ch) * W + c] = px[ch];
  }
}

/// ResizeMix: the box columns of frame-row (f, r) of the partner resized to the box, into C
/// channel rows of W elements at dst, as GatherRow lays them out; `cols` / `taps`: the box
/// columns' sources (ResizedColumns, read with the partner's mirror). The same values as
/// ResizedSource / ResizedLinear per pixel: the row's source (or taps) found once, the columns'
/// from the tables.
template <typename In>
void GatherResizedRow(In *__restrict dst, const In *__restrict x, const BatchShape &g,
                      const SampleParams &p, int64_t f, int r, const int *__restrict cols,
                      const LinearPixel *__restrict taps) {
  const In *frame = x + f * g.FrameElems();
  const int W = g.W, C = g.C, n = p.x1 - p.x0;
  if (n <= 0 || r < p.y0 || r >= p.y1) return;
  if (p.kind == kMaskResizedLinear) {  // bilinear, rounded to the input type (spec 10)
    const LinearTaps ty = LinearSource(r, p.y0, p.y1 - p.y0, g.H);
    for (int ch = 0; ch < C; ch++) {
      auto at = [&](int sr, int sc) {
        return LoadIn(g.in_planar ? frame[(int64_t(ch) * g.H + sr) * W + sc]
                                  : frame[(int64_t(sr) * W + sc) * C + ch]);
      };
      In *d = dst + int64_t(ch) * W + p.x0;
      for (int k = 0; k < n; k++) {
        LinearPixel t = taps[k];
        t.ty = ty;
        d[k] = ConvertOut<In>(LinearBlend(t, at));
      }
    }
    return;
  }
  const int sr = NearestSource(r, p.y0, p.y1 - p.y0, g.H);
  if (g.in_planar) {
    for (int ch = 0; ch < C; ch++) {
      const In *row = frame + (int64_t(ch) * g.H + sr) * W;
      In *d = dst + int64_t(ch) * W + p.x0;
      for (int k = 0; k < n; k++) d[k] = row[cols[k]];
    }
    return;
  }
  const In *row = frame + int64_t(sr) * W * C;
  if (C == 3) {
    In *d0 = dst + p.x0, *d1 = dst + W + p.x0, *d2 = dst + 2 * W + p.x0;
    for (int k = 0; k < n; k++) {
      const In *px = row + int64_t(cols[k]) * 3;
      d0[k] = px[0];
      d1[k] = px[1];
      d2[k] = px[2];
    }
    return;
  }
  for (int k = 0; k < n; k++) {
    const In *px = row + int64_t(cols[k]) * C;
    for (int ch = 0; ch < C; ch++) dst[int64_t(ch) * W + p.x0 + k] = px[ch];
  }
}

/// The mask row r (MaskAt for every column), without a per-element branch on the mask kind.
MSDA_CPU_CLONES void MaskRow(float *__restrict m, const SampleParams &p, const float *tables,
                             const uint8_t *bits, int H, int W, int r) {
  if (p.kind == kMaskBits) {
    const uint8_t *mask = bits + p.mask_offset;
    const int64_t k0 = int64_t(r) * W;
    auto bit = [&](int c) { return float((mask[(k0 + c) >> 3] >> ((k0 + c) & 7)) & 1u); };
    int c = 0;
    for (; c < W && ((k0 + c) & 7); c++) m[c] = bit(c);
    for (; c + 8 <= W; c += 8) {  // a whole byte: 8 values
      const unsigned byte = mask[(k0 + c) >> 3];
      for (int t = 0; t < 8; t++) m[c + t] = float((byte >> t) & 1u);
    }
    for (; c < W; c++) m[c] = bit(c);
    return;
  }
  if (p.kind == kMaskGauss) {
    const float gy = tables[p.mask_offset + r];
    const float *gx = tables + p.mask_offset + GaussColsOffset(H);
    for (int c = 0; c < W; c++) {
      const float g = gy * gx[c];
      m[c] = p.invert ? 1.0f - g : g;
    }
    return;
  }
  std::fill(m, m + W, p.outside);
  if (r >= p.y0 && r < p.y1 && p.x0 < p.x1) std::fill(m + p.x0, m + p.x1, 0.0f);
}

void WriteMask(float *mask, const SampleParams &p, const float *tables, const uint8_t *bits,
               int H, int W) {
  for (int r = 0; r < H; r++) MaskRow(mask + int64_t(r) * W, p, tables, bits, H, W, r);
}

/// The mixed label map of one sample (spec 11): SegSource's choice for every pixel. Rows that
/// no resized partner crosses take a select per pixel between the two maps' rows (a loop the
/// compiler vectorises when neither is flipped); rows through a ResizeMix box copy the own map
/// beside the box and gather the partner's inside it through one table of source columns.
template <typename T>
void MixSeg(T *out, const T *own, const T *partner, const SampleParams &p, const float *tables,
            const uint8_t *bits, int H, int W, int flip_own, int flip_partner,
            std::vector<float> &mrow) {
  mrow.resize(W);
  const float *m = mrow.data();
  std::vector<int> cols;  // ResizeMix: the partner's source column of each box column
  if (IsResized(p.kind)) NearestColumns(p, H, W, flip_partner, cols);
  for (int r = 0; r < H; r++) {
    T *o = out + int64_t(r) * W;
    const T *a = own + int64_t(r) * W, *b = partner + int64_t(r) * W;
    if (p.kind == kMaskBox && p.outside >= 0.5f && (r < p.y0 || r >= p.y1)) {
      // all own (an unmixed sample, or a row outside a box whose outside keeps the own label)
      if (flip_own) {
        for (int c = 0; c < W; c++) o[c] = a[W - 1 - c];
      } else {
        std::copy(a, a + W, o);
      }
      continue;
    }
    if (IsResized(p.kind) && r >= p.y0 && r < p.y1) {
      // a row through the ResizeMix box: M = 1 (own) outside it, 0 (the resized partner,
      // nearest) inside, through the box columns' table
      const T *prow = partner + int64_t(NearestSource(r, p.y0, p.y1 - p.y0, H)) * W;
      for (int c = 0; c < p.x0; c++) o[c] = a[flip_own ? W - 1 - c : c];
      for (int c = p.x0; c < p.x1; c++) o[c] = prow[cols[c - p.x0]];
      for (int c = p.x1; c < W; c++) o[c] = a[flip_own ? W - 1 - c : c];
      continue;
    }
    MaskRow(mrow.data(), p, tables, bits, H, W, r);
    if (!flip_own && !flip_partner) {
      for (int c = 0; c < W; c++) o[c] = SelectBits(TakesOwnLabel(m[c]), a[c], b[c]);
    } else {
      for (int c = 0; c < W; c++)
        o[c] = SelectBits(TakesOwnLabel(m[c]), a[flip_own ? W - 1 - c : c],
                          b[flip_partner ? W - 1 - c : c]);
    }
  }
}

#if MSDA_X86_DISPATCH
namespace v3 {
/// The plain rule of the GPU (kernel.h) on 8 lanes: integral inputs are finite and never -0, so
/// the blend alone equals MixValue at every m in [0, 1], and while inv_std is finite no NaN
/// arises to be canonicalised: the same bits as MixElement with 6 fewer operations a vector.
/// Writes the columns [0, 8 * floor(W / 8)) of a contiguous float16 or float32 row; returns
/// how many. The caller checks that inv_std is finite.
template <bool kNorm, typename Out, typename In>
MSDA_V3 int MixPlainRow8(Out *out, const float *m, const In *a, const In *b, int W, float mean,
                         float inv_std) {
  static_assert(std::is_integral_v<In>, "the plain rule holds for integral inputs");
  const __m256 vmean = _mm256_set1_ps(mean), vinv = _mm256_set1_ps(inv_std);
  int c = 0;
  for (; c + 8 <= W; c += 8) {
    __m256 v = Blend8(_mm256_loadu_ps(m + c), Load8(a + c), Load8(b + c));
    if constexpr (kNorm) v = _mm256_mul_ps(_mm256_sub_ps(v, vmean), vinv);
    if constexpr (std::is_same_v<Out, float16>)
      _mm_storeu_si128((__m128i *)(out + c),
                       _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    else
      _mm256_storeu_ps(out + c, v);
  }
  return c;
}

/// MixChannelRow for contiguous float16 output on CPUs with AVX2 + F16C, from column c0 on: the
/// hardware converts 8 lanes at once where the portable bit arithmetic needs dozens of
/// operations. The same IEEE operations as MixElement, lane by lane (select, blend, normalise,
/// canonical NaN, round to nearest even); same-type copies keep their bits as MixElement's do.
template <bool kNorm, typename In>
MSDA_V3 void MixChannelRowHalf(float16 *out, const float *m, const In *a, const In *b, int c0,
                               int W, float mean, float inv_std) {
  const __m256 vmean = _mm256_set1_ps(mean), vinv = _mm256_set1_ps(inv_std);
  int c = c0;
  for (; c + 8 <= W; c += 8) {
    Mixed8 x = MixValue8(_mm256_loadu_ps(m + c), Load8(a + c), Load8(b + c));
    if constexpr (kNorm) x.v = _mm256_mul_ps(_mm256_sub_ps(x.v, vmean), vinv);
    __m128i h = ToHalf8(x.v);
    if constexpr (!kNorm && std::is_same_v<In, float16>) h = KeepCopiedHalves(h, a + c, b + c, x);
    _mm_storeu_si128((__m128i *)(out + c), h);
  }
  for (; c < W; c++) out[c] = MixElement<kNorm, float16, In>(m[c], a[c], b[c], mean, inv_std);
}
}  // namespace v3
#endif

/// One channel row of output: MixElement over the columns, written contiguously.
template <bool kNorm, typename Out, typename In>
MSDA_CPU_CLONES void MixChannelRow(Out *__restrict out, const float *__restrict m,
                                   const In *__restrict a, const In *__restrict b, int W,
                                   float mean, float inv_std) {
  int c0 = 0;  // the columns before c0 are written already
#if MSDA_X86_DISPATCH
  // float16 / float32 rows of integral inputs (the training pipelines'): the plain rule, 8
  // lanes, where 1 / std is finite; the loops below write the last W % 8 columns
  if constexpr (std::is_integral_v<In> &&
                (std::is_same_v<Out, float16> || std::is_same_v<Out, float>)) {
    if (std::isfinite(inv_std) && UseV3())
      c0 = v3::MixPlainRow8<kNorm>(out, m, a, b, W, mean, inv_std);
  }
  if constexpr (std::is_same_v<Out, float16>) {
    if (UseHalfV3<Out, In>())
      return v3::MixChannelRowHalf<kNorm, In>(out, m, a, b, c0, W, mean, inv_std);
  }
#endif
  for (int c = c0; c < W; c++)
    out[c] = MixElement<kNorm, Out, In>(m[c], a[c], b[c], mean, inv_std);
}

/// Frame-rows [q0, q1) of one sample on the fused path. Each channel row is mixed contiguously
/// (the vector loops above): into the output's plane (CHW), or into a row buffer that is then
/// interleaved into the output's pixels (HWC).
template <typename Out, typename In>
void MixRowsFused(Out *out, const In *own, const In *partner, int flip_own, int flip_partner,
                  const SampleParams &p, const float *tables, const uint8_t *bits,
                  const BatchShape &g,
                  const float *norm, int64_t q0, int64_t q1, RowBuffers &buf) {
  buf.Reserve<Out, In>(g.W, g.C);
  float *m = buf.mask.data();
  In *a = reinterpret_cast<In *>(buf.a.data()), *b = reinterpret_cast<In *>(buf.b.data());
  const bool interleave = !g.out_planar && g.C > 1;
  Out *rows = reinterpret_cast<Out *>(buf.out.data());
  if (IsResized(p.kind))
    ResizedColumns(p, g, flip_partner, buf.resized_cols, buf.resized_taps);
  for (int64_t q = q0; q < q1; q++) {
    const int64_t f = q / g.H;
    const int r = static_cast<int>(q - f * g.H);
    MaskRow(m, p, tables, bits, g.H, g.W, r);
    const ColumnNeeds need = NeedsOfRow(p, r, 0, g.W);  // read only what the mask needs
    GatherRow(a, own, g, f, r, flip_own, need.own_a0, need.own_a1);
    GatherRow(a, own, g, f, r, flip_own, need.own_b0, need.own_b1);
    GatherRow(b, partner, g, f, r, flip_partner, need.partner_a0, need.partner_a1);
    if (IsResized(p.kind))
      GatherResizedRow(b, partner, g, p, f, r, buf.resized_cols.data(),
                       buf.resized_taps.data());
    Out *px = out + f * g.FrameElems() + int64_t(r) * g.W * g.C;  // the row's pixels (HWC)
    for (int ch = 0; ch < g.C; ch++) {
      Out *o = interleave  ? rows + int64_t(ch) * g.W
               : g.out_planar ? out + f * g.FrameElems() + (int64_t(ch) * g.H + r) * g.W
                              : px;  // one channel: HWC is the plane
      const In *ac = a + int64_t(ch) * g.W, *bc = b + int64_t(ch) * g.W;
      if (norm)
        MixChannelRow<true, Out, In>(o, m, ac, bc, g.W, norm[ch], norm[g.C + ch]);
      else
        MixChannelRow<false, Out, In>(o, m, ac, bc, g.W, 0.0f, 1.0f);
    }
    if (interleave && g.C == 3) {
      Interleave3(px, rows, rows + g.W, rows + 2 * g.W, g.W);
    } else if (interleave) {
      for (int c = 0; c < g.W; c++)
        for (int ch = 0; ch < g.C; ch++) px[int64_t(c) * g.C + ch] = rows[int64_t(ch) * g.W + c];
    }
  }
}

}  // namespace cpu
}  // namespace msda

#endif  // DALI_MSDA_CSRC_MIX_CPU_ROWS_H_
