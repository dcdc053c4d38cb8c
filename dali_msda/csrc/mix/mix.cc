// msda.Mix: schema, CPU backend and CPU registration.
//
// CPU work decomposition: sample i and its partner j = B - 1 - i are processed together, cut into
// blocks of whole rows (about kTaskElems elements per sample) that DALI's thread pool runs,
// largest first: a task mixes a row block of i and then the same rows of j, which read the same
// two input blocks, so each input is read from memory once. Within a row the mask is constant
// or piecewise constant for box masks (Mixup, CutMix, HMix) and FMix's binary table masks, so a
// row is split into spans that are copied (M = 1: own image, M = 0: partner) or blended with one
// weight; GMix computes the weight per pixel from the two Gaussian factor tables. Each span path gives the same bits as the
// generic Blend() of mask.h, which the GPU kernel evaluates.

#include <algorithm>
#include <cstdlib>
#include <cstring>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <type_traits>
#include <vector>

#include "mix.h"

namespace msda {

namespace {

constexpr int64_t kTaskElems = 1 << 16;

// ---- span loops, portable: auto-vectorised, compiled twice (AVX2 and the x86-64 baseline, SSE2)
// with the loader picking one for the CPU it runs on. Each is a function of its own with
// restrict pointers, which the vectoriser handles reliably. The same IEEE operations either way
// (no FMA: contraction is off), so the output bits do not depend on the CPU.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MSDA_X86_DISPATCH 1
#define MSDA_CPU_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define MSDA_X86_DISPATCH 0
#define MSDA_CPU_CLONES
#endif

template <typename Out, typename In>
MSDA_CPU_CLONES void ConvertSpanAuto(Out *__restrict out, const In *__restrict in, int64_t n) {
  for (int64_t k = 0; k < n; k++) out[k] = ConvertOut<Out>(LoadIn(in[k]));
}

template <typename Out, typename In>
MSDA_CPU_CLONES void BlendSpanAuto(Out *__restrict out, const In *__restrict self,
                                   const In *__restrict other, int64_t n, float m) {
  const float om = 1.0f - m;
  for (int64_t k = 0; k < n; k++)
    out[k] = ConvertOut<Out>(m * LoadIn(self[k]) + om * LoadIn(other[k]));
}

/// GMix row: m = gy * gx[k] (or 1 - that), the same product as MaskAt(), then MixElement
/// (where the product is exactly 1 or 0 the value is taken, not blended).
template <bool kInvert, typename Out, typename In>
MSDA_CPU_CLONES void GaussBlendSpanAuto(Out *__restrict out, const In *__restrict self,
                                        const In *__restrict other, float gy,
                                        const float *__restrict gx, int64_t n) {
  for (int64_t k = 0; k < n; k++) {
    float m = gy * gx[k];
    if (kInvert) m = 1.0f - m;
    out[k] = MixElement<false, Out, In>(m, self[k], other[k], 0.0f, 1.0f);
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
MSDA_V3 inline Mixed8 MixValue8(__m256 m, __m256 a, __m256 b) {
  const __m256 one = _mm256_set1_ps(1.0f);
  Mixed8 r;
  r.is1 = _mm256_cmp_ps(m, one, _CMP_EQ_OQ);
  r.is0 = _mm256_cmp_ps(m, _mm256_setzero_ps(), _CMP_EQ_OQ);
  r.v = _mm256_add_ps(_mm256_mul_ps(m, a), _mm256_mul_ps(_mm256_sub_ps(one, m), b));
  r.v = _mm256_blendv_ps(_mm256_blendv_ps(r.v, b, r.is0), a, r.is1);
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
MSDA_V3 void BlendSpan(Out *out, const In *self, const In *other, int64_t n, float m) {
  const float om = 1.0f - m;
  const __m256 vm = _mm256_set1_ps(m), vom = _mm256_set1_ps(om);
  int64_t k = 0;
  for (; k + 8 <= n; k += 8)
    Store8(out + k, _mm256_add_ps(_mm256_mul_ps(vm, Load8(self + k)),
                                  _mm256_mul_ps(vom, Load8(other + k))));
  for (; k < n; k++) out[k] = ConvertOut<Out>(m * LoadIn(self[k]) + om * LoadIn(other[k]));
}

template <bool kInvert, typename Out, typename In>
MSDA_V3 void GaussBlendSpan(Out *out, const In *self, const In *other, float gy, const float *gx,
                            int64_t n) {
  const __m256 vgy = _mm256_set1_ps(gy), one = _mm256_set1_ps(1.0f);
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    __m256 m = _mm256_mul_ps(vgy, _mm256_loadu_ps(gx + k));
    if (kInvert) m = _mm256_sub_ps(one, m);
    const Mixed8 x = MixValue8(m, Load8(self + k), Load8(other + k));
    if constexpr (std::is_same_v<Out, float16> && std::is_same_v<In, float16>)
      _mm_storeu_si128((__m128i *)(out + k), KeepCopiedHalves(ToHalf8(x.v), self + k,
                                                              other + k, x));
    else
      Store8(out + k, x.v);
  }
  for (; k < n; k++) {
    float m = gy * gx[k];
    if (kInvert) m = 1.0f - m;
    out[k] = MixElement<false, Out, In>(m, self[k], other[k], 0.0f, 1.0f);
  }
}
}  // namespace v3

/// Use the AVX2 + F16C loops when float16 is involved and the CPU has them (the environment
/// variable DALI_MSDA_NO_F16C=1 turns them off, for tests of the portable path).
template <typename Out, typename In>
bool UseHalfV3() {
  if constexpr (std::is_same_v<Out, float16> || std::is_same_v<In, float16>) {
    static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") &&
                           !std::getenv("DALI_MSDA_NO_F16C");
    return ok;
  }
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
void BlendSpan(Out *out, const In *self, const In *other, int64_t n, float m) {
  if (m == 1.0f) return ConvertSpan<Out, In>(out, self, n);
  if (m == 0.0f) return ConvertSpan<Out, In>(out, other, n);
#if MSDA_X86_DISPATCH
  if (UseHalfV3<Out, In>()) return v3::BlendSpan<Out, In>(out, self, other, n, m);
#endif
  BlendSpanAuto<Out, In>(out, self, other, n, m);
}

template <bool kInvert, typename Out, typename In>
void GaussBlendSpan(Out *out, const In *self, const In *other, float gy, const float *gx,
                    int64_t n) {
#if MSDA_X86_DISPATCH
  if (UseHalfV3<Out, In>())
    return v3::GaussBlendSpan<kInvert, Out, In>(out, self, other, gy, gx, n);
#endif
  GaussBlendSpanAuto<kInvert, Out, In>(out, self, other, gy, gx, n);
}

/// ResizeMix: columns [x0, x1) of row r (at `o`, a row of the output) from the partner resized to
/// the box (spec 10); `frame_rows` is the partner's row q - r (the first row of its frame or
/// channel plane). The values are taken, not blended (M = 0), as MixElement takes them.
template <typename Out, typename In>
void ResizedSpan(Out *o, const In *frame_rows, const SampleParams &p, const Geometry &g, int r) {
  const int64_t len = g.RowLen();
  const int inner = g.inner;
  for (int c = p.x0; c < p.x1; c++) {
    Out *dst = o + int64_t(c) * inner;
    if (p.kind == kMaskResizedLinear) {  // bilinear, rounded to the input type (spec 10)
      for (int k = 0; k < inner; k++) {
        const In v = ConvertOut<In>(ResizedLinear(p, g.H, g.W, r, c, 0, [&](int sr, int sc) {
          return LoadIn(frame_rows[sr * len + int64_t(sc) * inner + k]);
        }));
        dst[k] = MixElement<false, Out, In>(0.0f, v, v, 0.0f, 1.0f);
      }
      continue;
    }
    int sr, sc;
    ResizedSource(p, g.H, g.W, r, c, 0, &sr, &sc);
    const In *src = frame_rows + sr * len + int64_t(sc) * inner;
    for (int k = 0; k < inner; k++)
      dst[k] = MixElement<false, Out, In>(0.0f, src[k], src[k], 0.0f, 1.0f);
  }
}

/// The end of the run of equal bits of an FMix mask row that starts at column c0 (`row`: the
/// row's first bit index).
inline int BitRunEnd(const uint8_t *bits, int64_t row, int c0, int W) {
  const bool v = MaskBit(bits, row + c0);
  int c1 = c0 + 1;
  while (c1 < W && MaskBit(bits, row + c1) == v) c1++;
  return c1;
}

/// Rows [q0, q1) of one sample (see Geometry for the row numbering).
template <typename Out, typename In>
void MixRows(Out *out, const In *self, const In *other, const SampleParams &p,
             const float *tables, const uint8_t *bits, const Geometry &g, int64_t q0,
             int64_t q1) {
  const int64_t len = g.RowLen();
  const int inner = g.inner;
  // GMix: the column factors repeated over the channels, so that the row loop vectorises
  std::vector<float> gx(p.kind == kMaskGauss ? len : 0);
  for (int64_t k = 0; k < static_cast<int64_t>(gx.size()); k++)
    gx[k] = tables[p.table_offset + GaussColsOffset(g.H) + k / inner];
  auto misses_box = [&](int64_t q) {
    const int r = q % g.H;
    return r < p.y0 || r >= p.y1 || p.x0 == p.x1;
  };
  for (int64_t q = q0; q < q1;) {
    const int r = q % g.H;
    Out *o = out + q * len;
    const In *a = self + q * len, *b = other + q * len;
    if (p.kind == kMaskBits) {  // a span per run of equal bits (FMix: runs of 0 / 1)
      const uint8_t *mask = bits + p.table_offset;
      const int64_t row = int64_t(r) * g.W;
      for (int c0 = 0; c0 < g.W;) {
        const int c1 = BitRunEnd(mask, row, c0, g.W);
        const int64_t k0 = int64_t(c0) * inner;
        BlendSpan(o + k0, a + k0, b + k0, int64_t(c1 - c0) * inner,
                  MaskBit(mask, row + c0) ? 1.0f : 0.0f);
        c0 = c1;
      }
      q++;
    } else if (p.kind == kMaskGauss) {
      const float gy = tables[p.table_offset + r];
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
        ResizedSpan(o, other + (q - r) * len, p, g, r);
      else
        ConvertSpan(o + k0, b + k0, k1 - k0);  // inside the box: the partner, exactly
      BlendSpan(o + k1, a + k1, b + k1, len - k1, p.outside);
      q++;
    }
  }
}

// ---- the fused path: normalisation, mirror and / or a layout change (HWC <-> CHW)

/// Per-thread row buffers of the fused path: the mask row, and the two sources' rows with the
/// channels separated (C rows of W).
struct RowBuffers {
  std::vector<float> mask;
  std::vector<char> a, b;
  template <typename In>
  void Reserve(int W, int C) {
    const size_t n = size_t(W) * C * sizeof(In);
    if (mask.size() < size_t(W)) mask.assign(W, 0.0f);
    if (a.size() < n) a.assign(n, 0);
    if (b.size() < n) b.assign(n, 0);
  }
};

/// Output columns [a, b) of row r that need the sample or the partner: a box row needs the
/// partner inside the box and the sample outside it (unless the outside weight is 0 or 1; a
/// resized partner is gathered separately: GatherResizedRow); a Gaussian or bit mask needs
/// both everywhere.
struct ColumnNeeds {
  int self_a0, self_a1, self_b0, self_b1;  // up to two ranges for the sample
  int other_a0, other_a1;                  // one range for the partner
};

inline ColumnNeeds NeedsOfRow(const SampleParams &p, int r, int c0, int c1) {
  ColumnNeeds n{c0, c1, c1, c1, c0, c1};
  if (p.kind != kMaskBox && !IsResized(p.kind)) return n;
  const bool row_in_box = r >= p.y0 && r < p.y1 && p.x0 < p.x1;
  const int x0 = row_in_box ? std::clamp(p.x0, c0, c1) : c1;
  const int x1 = row_in_box ? std::clamp(p.x1, c0, c1) : c1;
  if (p.outside == 0.0f) {  // the sample: everything outside [x0, x1), if it weighs there
    n.self_a0 = n.self_a1 = n.self_b0 = n.self_b1 = c1;
  } else {
    n.self_a0 = c0;
    n.self_a1 = x0;
    n.self_b0 = x1;
    n.self_b1 = c1;
  }
  if (p.outside == 1.0f) {  // the partner: the box, or everything when the outside is not 1
    n.other_a0 = x0;
    n.other_a1 = x1;
  }
  if (IsResized(p.kind)) n.other_a0 = n.other_a1 = c1;
  return n;
}

/// Columns [c0, c1) of frame-row (f, r) of x, read with mirror `flip`, into C channel rows of
/// W elements at dst: one pass over the source row.
template <typename In>
void GatherRow(In *__restrict dst, const In *__restrict x, const LaunchGeometry &g, int64_t f,
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
  if (C == 3) {  // the common case, unrolled
    for (int c = c0; c < c1; c++) {
      const In *px = row + int64_t(flip ? W - 1 - c : c) * 3;
      dst[c] = px[0];
      dst[W + c] = px[1];
      dst[2 * W + c] = px[2];
    }
    return;
  }
  for (int c = c0; c < c1; c++) {
    const In *px = row + int64_t(flip ? W - 1 - c : c) * C;
    for (int ch = 0; ch < C; ch++) dst[int64_t(ch) * W + c] = px[ch];
  }
}

/// ResizeMix: the box columns of frame-row (f, r) of the partner resized to the box (read with
/// mirror `flip`), into C channel rows of W elements at dst, as GatherRow lays them out.
template <typename In>
void GatherResizedRow(In *__restrict dst, const In *__restrict x, const LaunchGeometry &g,
                      const SampleParams &p, int64_t f, int r, int flip) {
  const In *frame = x + f * g.FrameElems();
  for (int c = p.x0; c < p.x1; c++) {
    for (int ch = 0; ch < g.C; ch++) {
      auto at = [&](int sr, int sc) -> const In & {
        return g.in_planar ? frame[(int64_t(ch) * g.H + sr) * g.W + sc]
                           : frame[(int64_t(sr) * g.W + sc) * g.C + ch];
      };
      In &d = dst[int64_t(ch) * g.W + c];
      if (p.kind == kMaskResizedLinear) {  // bilinear, rounded to the input type (spec 10)
        d = ConvertOut<In>(ResizedLinear(p, g.H, g.W, r, c, flip,
                                         [&](int sr, int sc) { return LoadIn(at(sr, sc)); }));
      } else {
        int sr, sc;
        ResizedSource(p, g.H, g.W, r, c, flip, &sr, &sc);
        d = at(sr, sc);
      }
    }
  }
}

/// The mask row r (MaskAt for every column), without a per-element branch on the mask kind.
MSDA_CPU_CLONES void MaskRow(float *__restrict m, const SampleParams &p, const float *tables,
                             const uint8_t *bits, int H, int W, int r) {
  if (p.kind == kMaskBits) {
    const uint8_t *mask = bits + p.table_offset;
    for (int c = 0; c < W; c++) m[c] = MaskBit(mask, int64_t(r) * W + c) ? 1.0f : 0.0f;
    return;
  }
  if (p.kind == kMaskGauss) {
    const float gy = tables[p.table_offset + r];
    const float *gx = tables + p.table_offset + GaussColsOffset(H);
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
void MixSeg(T *out, const T *self, const T *other, const SampleParams &p, const float *tables,
            const uint8_t *bits, int H, int W, int flip_self, int flip_other,
            std::vector<float> &mrow) {
  mrow.resize(W);
  const float *m = mrow.data();
  std::vector<int> cols;  // ResizeMix: the partner's source column of each box column
  for (int r = 0; r < H; r++) {
    T *o = out + int64_t(r) * W;
    const T *a = self + int64_t(r) * W, *b = other + int64_t(r) * W;
    if (p.kind == kMaskBox && p.outside >= 0.5f && (r < p.y0 || r >= p.y1)) {
      // all own (an unmixed sample, or a row outside a box whose outside keeps the own label)
      if (flip_self) {
        for (int c = 0; c < W; c++) o[c] = a[W - 1 - c];
      } else {
        std::copy(a, a + W, o);
      }
      continue;
    }
    if (IsResized(p.kind) && r >= p.y0 && r < p.y1) {
      // a row through the ResizeMix box: M = 1 (own) outside it, 0 (the resized partner,
      // nearest) inside; the source columns (ResizedSource's) are the same on every row
      if (cols.empty()) {
        cols.resize(p.x1 - p.x0);
        for (int c = p.x0; c < p.x1; c++) {
          int sr;
          ResizedSource(p, H, W, r, c, flip_other, &sr, &cols[c - p.x0]);
        }
      }
      int sr, sc;
      ResizedSource(p, H, W, r, p.x0, flip_other, &sr, &sc);
      const T *prow = other + int64_t(sr) * W;
      for (int c = 0; c < p.x0; c++) o[c] = a[flip_self ? W - 1 - c : c];
      for (int c = p.x0; c < p.x1; c++) o[c] = prow[cols[c - p.x0]];
      for (int c = p.x1; c < W; c++) o[c] = a[flip_self ? W - 1 - c : c];
      continue;
    }
    MaskRow(mrow.data(), p, tables, bits, H, W, r);
    if (!flip_self && !flip_other) {
      for (int c = 0; c < W; c++) o[c] = m[c] >= 0.5f ? a[c] : b[c];
    } else {
      for (int c = 0; c < W; c++)
        o[c] = m[c] >= 0.5f ? a[flip_self ? W - 1 - c : c] : b[flip_other ? W - 1 - c : c];
    }
  }
}

#if MSDA_X86_DISPATCH
namespace v3 {
/// MixChannelRow for contiguous float16 output on CPUs with AVX2 + F16C: the hardware converts
/// 8 lanes at once where the portable bit arithmetic needs dozens of operations. The same IEEE
/// operations as MixElement, lane by lane (select, blend, normalise, canonical NaN, round to
/// nearest even); same-type copies keep their bits as MixElement's do.
template <bool kNorm, typename In>
MSDA_V3 void MixChannelRowHalf(float16 *out, const float *m, const In *a, const In *b, int W,
                               float mean, float inv_std) {
  const __m256 vmean = _mm256_set1_ps(mean), vinv = _mm256_set1_ps(inv_std);
  int c = 0;
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

/// One channel row of output: MixElement over the columns, written contiguously (CHW output)
/// or every C elements (HWC output).
template <bool kNorm, typename Out, typename In>
MSDA_CPU_CLONES void MixChannelRow(Out *__restrict out, int64_t stride, const float *__restrict m,
                                   const In *__restrict a, const In *__restrict b, int W,
                                   float mean, float inv_std) {
#if MSDA_X86_DISPATCH
  if constexpr (std::is_same_v<Out, float16>) {
    if (stride == 1 && UseHalfV3<Out, In>())
      return v3::MixChannelRowHalf<kNorm, In>(out, m, a, b, W, mean, inv_std);
  }
#endif
  if (stride == 1) {
    for (int c = 0; c < W; c++)
      out[c] = MixElement<kNorm, Out, In>(m[c], a[c], b[c], mean, inv_std);
  } else {
    for (int c = 0; c < W; c++)
      out[c * stride] = MixElement<kNorm, Out, In>(m[c], a[c], b[c], mean, inv_std);
  }
}

/// Frame-rows [q0, q1) of one sample on the fused path.
template <typename Out, typename In>
void MixRowsFused(Out *out, const In *self, const In *other, int flip_self, int flip_other,
                  const SampleParams &p, const float *tables, const uint8_t *bits,
                  const LaunchGeometry &g,
                  const float *norm, int64_t q0, int64_t q1, RowBuffers &buf) {
  buf.Reserve<In>(g.W, g.C);
  float *m = buf.mask.data();
  In *a = reinterpret_cast<In *>(buf.a.data()), *b = reinterpret_cast<In *>(buf.b.data());
  for (int64_t q = q0; q < q1; q++) {
    const int64_t f = q / g.H;
    const int r = static_cast<int>(q - f * g.H);
    MaskRow(m, p, tables, bits, g.H, g.W, r);
    const ColumnNeeds need = NeedsOfRow(p, r, 0, g.W);  // read only what the mask needs
    GatherRow(a, self, g, f, r, flip_self, need.self_a0, need.self_a1);
    GatherRow(a, self, g, f, r, flip_self, need.self_b0, need.self_b1);
    GatherRow(b, other, g, f, r, flip_other, need.other_a0, need.other_a1);
    if (IsResized(p.kind) && r >= p.y0 && r < p.y1)
      GatherResizedRow(b, other, g, p, f, r, flip_other);
    for (int ch = 0; ch < g.C; ch++) {
      Out *o = g.out_planar ? out + f * g.FrameElems() + (int64_t(ch) * g.H + r) * g.W
                            : out + f * g.FrameElems() + int64_t(r) * g.W * g.C + ch;
      const int64_t stride = g.out_planar ? 1 : g.C;
      const In *ac = a + int64_t(ch) * g.W, *bc = b + int64_t(ch) * g.W;
      if (norm)
        MixChannelRow<true, Out, In>(o, stride, m, ac, bc, g.W, norm[ch], norm[g.C + ch]);
      else
        MixChannelRow<false, Out, In>(o, stride, m, ac, bc, g.W, 0.0f, 1.0f);
    }
  }
}

}  // namespace

template <>
void Mix<CPUBackend>::RunImpl(Workspace &ws) {
  detail::HostTimer timer("CPU");
  const auto &in = ws.Input<CPUBackend>(0);
  auto &out = ws.Output<CPUBackend>(0);
  const int n = in.num_samples();
  timer.Record("draw", draw_us_);  // DrawParams ran in SetupImpl
  BuildFMixMasks(ws);
  timer.Step("fmix");
  if (has_seg_) {
    BuildClassMixMasks(ws, [&](int j) { return ws.Input<CPUBackend>(2).raw_tensor(j); });
    timer.Step("classmix");
  }
  SetOutputLayouts(ws);
  if (has_boxes_)
    WriteBoxes(ws, [](void *dst, const void *src, size_t bytes) { std::memcpy(dst, src, bytes); });

  auto &tp = ws.GetThreadPool();
  const Geometry g = geom_;
  // the fused path's geometry (frames, H, W, C, layouts); its GPU launch fields go unused here
  const LaunchGeometry fg = Shape(n);
  const bool fused = Fused();
  const int64_t rows = fused ? frames_ * g.H : g.Rows();
  const int64_t row_elems = fused ? int64_t(g.W) * channels_ : g.RowLen();
  const int64_t rows_per_task = std::max<int64_t>(1, kTaskElems / std::max<int64_t>(1, row_elems));
  const float *tables = tables_.data();
  const uint8_t *bits = bits_.data();
  const float *norm = normalize_ ? norm_.data() : nullptr;
  const SampleParams *params = params_.data();
  const int *mirror = mirror_.data();
  // the tasks capture the views by reference (not the per-sample pointer arrays by value, which
  // would copy O(n) data into each of O(n) tasks): RunAll runs inside their scope
  TensorListView<StorageCPU, float> mv;
  if (output_mask_) mv = view<float>(ws.Output<CPUBackend>(MaskOutputIdx()));
  for (int i = 0; output_mask_ && i < n; i++)
    tp.AddWork([&, i](int) { WriteMask(mv.data[i], params[i], tables, bits, g.H, g.W); },
               int64_t(g.H) * g.W);
  if (has_seg_) {  // the label maps (spec 11), a task per sample
    TYPE_SWITCH(seg_type_, type2id, T, (uint8_t, int32_t), (
      const auto &seg_in = ws.Input<CPUBackend>(2);
      auto &seg_out = ws.Output<CPUBackend>(SegOutputIdx());
      for (int i = 0; i < n; i++) {
        const int j = params[i].partner;
        // the pointers by value: the tensor lists' references end with this block, the tasks
        // run at RunAll below
        T *o = seg_out.mutable_tensor<T>(i);
        const T *self = seg_in.tensor<T>(i), *other = seg_in.tensor<T>(j);
        tp.AddWork([&, i, j, o, self, other](int) {
          static thread_local std::vector<float> mrow;
          MixSeg<T>(o, self, other, params[i], tables, bits, g.H, g.W, mirror[i], mirror[j],
                    mrow);
        }, int64_t(g.H) * g.W);
      }
    ), DALI_FAIL("unreachable"));  // NOLINT
  }
  TYPE_SWITCH(in.type(), type2id, In, (uint8_t, float16, float), (
    TYPE_SWITCH(out.type(), type2id, Out, (uint8_t, float16, float), (
      auto iv = view<const In>(in);
      auto ov = view<Out>(out);
      for (int i = 0; i < (n + 1) / 2; i++) {
        const int j = n - 1 - i;  // the pair (i, j); i == j for the middle of an odd batch
        for (int64_t q0 = 0; q0 < rows; q0 += rows_per_task) {
          int64_t q1 = std::min(rows, q0 + rows_per_task);
          tp.AddWork([&, i, j, q0, q1](int) {
            static thread_local RowBuffers buf;
            for (int s : {i, j}) {
              const SampleParams &p = params[s];
              if (fused)
                MixRowsFused<Out, In>(ov.data[s], iv.data[s], iv.data[p.partner], mirror[s],
                                      mirror[p.partner], p, tables, bits, fg, norm, q0, q1, buf);
              else
                MixRows<Out, In>(ov.data[s], iv.data[s], iv.data[p.partner], p, tables, bits, g,
                                 q0, q1);
              if (j == i) break;
            }
          }, (q1 - q0) * row_elems * (i == j ? 1 : 2));
        }
      }
      tp.RunAll();
    ), DALI_FAIL(make_string("Unsupported output type ", out.type(), ".")));  // NOLINT
  ), DALI_FAIL(make_string("Unsupported input type ", in.type(), ".")));  // NOLINT
  timer.Step("mix");

  auto tv = view<float>(ws.Output<CPUBackend>(1));
  for (int i = 0; i < n; i++) TargetRow(i, tv.data[i]);
  if (output_params_) {
    auto pv = view<float>(ws.Output<CPUBackend>(ParamsOutputIdx()));
    for (int i = 0; i < n; i++) ParamsRow(i, pv.data[i]);
  }
  timer.Done(n, 0, "targets");
}

}  // namespace msda

// clang-format off
DALI_SCHEMA(msda__Mix)
  .DocStr(R"code(Mixes a batch of images with Mixup, CutMix, HMix, GMix, FMix, ResizeMix or
ClassMix and returns soft labels (and, given label maps, the mixed maps).

Every method is a choice of mask: each sample ``i`` is blended with its partner ``j = B - 1 - i``
(the batch reversed) as ``out_i = M_i * x_i + (1 - M_i) * x_j``, where the mask ``M_i`` (H x W,
one for all channels and frames) is the weight of the sample's own image, and its target is
``mean(M_i) * onehot(y_i) + (1 - mean(M_i)) * onehot(y_j)`` (label-smoothed). With an odd batch
the middle sample is its own partner and passes through unchanged.

- ``mixup``: ``M = lam`` everywhere, ``lam ~ Beta(alpha, alpha)``.
- ``cutmix``: ``M = 0`` in a box of side ratio ``sqrt(1 - lam)`` around a uniform centre (clipped to
  the image), 1 elsewhere; the label weight is the realised area (``correct_lam``).
- ``hmix``: a CutMix box of side ratio ``sqrt(hmix_ratio * (1 - lam))`` and a global blend outside
  it, scaled so that ``mean(M) = lam``.
- ``gmix``: ``M`` is a Gaussian blob (peak 1 at a uniform centre) of the sample's own image when
  ``lam < 0.5``, or of the partner otherwise.
- ``fmix``: ``M`` is binary: the ``ceil`` or ``floor`` (a fair coin) of ``lam * H * W`` pixels with
  the largest values of low-frequency Fourier noise (spectrum weights ``1 / f ** decay_power``)
  are 1; the label weight is the realised mean of ``M``. Masks are made on the host.
- ``classmix`` (needs ``seg``): ``M = 0`` where the partner's label map holds one of
  ``ceil(n / 2)`` of its ``n`` labels (drawn uniformly; ``ignore_index`` not counted), 1
  elsewhere; the label weight is the mask's mean.
- ``resizemix``: the whole partner, resized (nearest neighbour) to ``floor(H tau) x floor(W tau)``
  with ``tau ~ U(scale_min, scale_max)``, is pasted at a uniform centre, shifted to lie inside the
  image; ``M`` is 0 there and 1 elsewhere. ``lam`` (drawn or given; ``params``) is ``tau``; in
  ``"batch"`` mode one ``tau`` per batch and a centre per sample, as the official code.

The outputs are ``(mixed, targets)``, then the mixed label maps when ``seg`` is given, then
``boxes``, ``box_labels`` and ``box_weights`` when ``boxes`` are given, then
``mask`` with ``output_mask=True``, then ``params`` with ``output_params=True``:
``mixed`` has the layout and shape of ``images`` and type ``dtype``; ``targets`` are float32
vectors of length K; ``mask`` is the float32 H x W mask each sample got (layout "HW").

Example::

    images, labels = fn.readers.file(file_root=root, random_shuffle=True, name="Reader")
    images = fn.decoders.image(images, device="mixed")
    images = fn.resize(images, size=(224, 224))
    mixed, targets = fn.msda.mix(images, labels, method="hmix", alpha=1.0, num_classes=1000)
)code")
  .NumInput(2, 3)
  .InputDox(0, "images", "TensorList of uint8, float16 or float32",
            "A batch of images (HWC, CHW) or sequences (FHWC, FCHW) of one shape. A missing "
            "layout means HWC (3-D) or FHWC (4-D).")
  .InputDox(1, "labels", "TensorList on the CPU",
            "Integer class indices, one per sample (then ``num_classes`` is required), or float32 "
            "soft-label vectors of length K (e.g. from an earlier mix), mixed as vectors: "
            "probabilities (finite, >= 0, each row summing to 1 within 1e-3).")
  .InputDevice(1, ::dali::InputDevice::CPU)
  .InputDox(2, "seg", "TensorList of uint8 or int32, optional",
            "Label maps, one per image (H x W or H x W x 1, the image's size; on the images' "
            "device), mixed by each sample's mask into an output right after ``targets``: the "
            "own label where the mask is >= 0.5, the partner's elsewhere, each map flipped with "
            "its image, a ResizeMix partner's resized into the box (nearest). Images only.")
  .AllowSequences()
  .OutputFn([](const ::dali::OpSpec &spec) {
    return 2 + (spec.NumRegularInput() > 2) + 3 * spec.HasTensorArgument("boxes") +
           spec.GetArgument<bool>("output_mask") + spec.GetArgument<bool>("output_params");
  })
  .AddOptionalArg("method", R"code(Mixing method: ``"mixup"``, ``"cutmix"``, ``"hmix"``,
``"gmix"``, ``"fmix"``, ``"resizemix"`` or ``"classmix"`` (needs ``seg``). Required unless
``method_id`` is given.)code",
                  std::string())
  .AddOptionalArg("method_id", R"code(Method per sample as an int32 argument input: 0 mixup,
1 cutmix, 2 hmix, 3 gmix, 4 fmix, 5 resizemix, 6 classmix; overrides ``method``. It lets a
pipeline switch methods without being rebuilt (a schedule fed by ``fn.external_source``) or
pick one at random per batch or sample, as timm's ``switch_prob`` does (e.g.
``fn.random.coin_flip(probability=0.5, dtype=types.INT32)``).
In ``"batch"`` mode it must be the same for every sample.)code", DALI_INT32, nullptr, true)
  .AddOptionalArg("alpha", "Parameter of the Beta(alpha, alpha) distribution of ``lam``; > 0.",
                  1.0f, true)
  .AddOptionalArg("prob", "Probability that mixing is applied (per batch, or per sample in "
                  "``\"elem\"`` mode); in [0, 1].", 1.0f, true)
  .AddOptionalArg("hmix_ratio", "HMix: the share r of ``1 - lam`` given to the box (side ratio "
                  "``sqrt(r * (1 - lam))``); 0 is Mixup, 1 is CutMix with area correction. In "
                  "[0, 1].", 0.5f, true)
  .AddOptionalArg("box", R"code(CutMix and HMix: how a box of side ``cut = floor(H sqrt(1 - lam))``
is cut around its centre ``cy``: ``"even"`` (default) takes rows ``[cy - cut // 2, cy + cut // 2)``,
an even side, as timm's ``rand_bbox``, the CutMix authors' and the HMix/GMix authors' code do;
``"exact"`` takes ``[cy - cut // 2, cy + (cut + 1) // 2)``, a side of exactly ``cut``. Columns
likewise; both are clipped to the image.)code", std::string("even"))
  .AddOptionalArg("ignore_index", R"code(ClassMix: a label of the maps that is not a class (not
counted among the classes present, never selected; e.g. 255); -1: none.)code", -1)
  .AddOptionalArg("resize_interp", R"code(ResizeMix: how the partner is resized, ``"nearest"`` (the
official code's ``F.interpolate`` default) or ``"bilinear"`` (``align_corners=False``; the value
is rounded to the input type, as resizing an image of that type gives).)code",
                  std::string("nearest"))
  .AddOptionalArg("scale_min", "ResizeMix: the smallest scale ``tau`` of the pasted partner; in "
                  "(0, 1].", 0.1f)
  .AddOptionalArg("scale_max", "ResizeMix: the largest scale ``tau``; in (0, 1], >= "
                  "``scale_min``.", 0.8f)
  .AddOptionalArg("decay_power", "FMix: the decay power d of the spectrum weights ``1 / max(f, 1 / "
                  "max(H, W)) ** d`` (larger: smoother masks); > 0.", 3.0f)
  .AddOptionalArg("fmix_noise", R"code(FMix: the Fourier noise per sample as an argument input,
replacing the drawn one: float32 of shape ``(H, W // 2 + 1, 2)`` (real and imaginary part of each
bin of the real-FFT grid; flat ``(H * (W // 2 + 1) * 2,)`` is accepted too), as
``dali_msda.reference.fmix_low_freq`` takes it. For tests and reproductions; finite. In
``"batch"`` mode it must be the same for every sample.)code", DALI_FLOAT_VEC, nullptr, true)
  .AddOptionalArg("mode", R"code(``"batch"`` (one ``lam``, centre and apply decision for the whole
batch, as timm and the official code) or ``"elem"`` (each sample draws its own).)code",
                  std::string("batch"))
  .AddOptionalArg("correct_lam", "CutMix: label weight from the realised (clipped) box area "
                  "rather than the sampled ``lam``.", true)
  .AddOptionalArg("label_smoothing", "Label smoothing eps: a one-hot row becomes ``1 - eps + "
                  "eps / K`` at its class and ``eps / K`` elsewhere; in [0, 1].", 0.0f)
  .AddOptionalArg("num_classes", "Number of classes K; required with class-index labels.",
                  DALI_INT32, nullptr)
  .AddOptionalTypeArg("dtype", "Type of the mixed images (uint8, float16 or float32); default: "
                      "the type of ``images``. Conversion to uint8 rounds to nearest and "
                      "saturates.")
  .AddOptionalArg("lam", "Explicit ``lam`` per sample in [0, 1], replacing the draw.",
                  DALI_FLOAT, nullptr, true)
  .AddOptionalArg("center", "Explicit mask centre per sample, relative ``(y, x)`` in [0, 1), "
                  "replacing the draw.", DALI_FLOAT_VEC, nullptr, true)
  .AddOptionalArg("mean", R"code(Fused normalisation, as ``crop_mirror_normalize`` does it: the
mean subtracted from each mixed value, one value or one per channel. Giving ``mean`` or ``std``
turns normalisation on: each output value is ``(v - mean[c]) * (1 / std[c])`` (float32, the
reciprocal rounded to float32), where ``v`` is the float32 mix of the raw input values (the
normalised mix, since normalisation is affine). Default 0.)code", DALI_FLOAT_VEC, nullptr)
  .AddOptionalArg("std", R"code(Fused normalisation: the standard deviation each mixed value is
divided by (multiplied by its float32 reciprocal), one value or one per channel; finite and > 0.
Default 1.)code", DALI_FLOAT_VEC, nullptr)
  .AddOptionalArg("output_layout", R"code(Layout of ``mixed``: ``"HWC"`` or ``"CHW"`` for images
(``"FHWC"`` or ``"FCHW"`` for sequences); the transposition is fused into the mix. Default: the
layout of ``images``.)code", std::string())
  .AddOptionalArg("mirror", R"code(Horizontal flip per sample (int 0 or 1; a constant or an argument
input, e.g. ``fn.random.coin_flip()``), applied to each image *before* it is mixed, as
``crop_mirror_normalize`` followed by the mix would: sample ``i`` is flipped by its own value and
its partner by the partner's value. The mask (``output_mask``) and the centre (``output_params``)
are in the coordinates of the output, so ``mixed = M * flip_i(x_i) + (1 - M) * flip_j(x_j)``.
Images only (not sequences).)code", 0, true)
  .AddOptionalArg("boxes", R"code(Detection boxes per image as an argument input: float32
``(N, 4)``, relative ``(l, t, r, b)`` in [0, 1] (DALI's "ltrb", as ``fn.readers.coco(ltrb=True,
ratio=True)`` gives them; N may be 0), with ``box_labels``. Mixed by the image's draw (spec 13) into
three outputs after the map: ``boxes`` (float32 ``(N', 4)``), ``box_labels`` (int32 ``(N',)``) and
``box_weights`` (float32 ``(N',)``). Mixup: both images' boxes, weighted ``lam`` and ``1 - lam``;
CutMix: the own boxes clipped to what the paste leaves visible and the partner's clipped to the
pasted box, kept where at least ``min_visible`` of their area shows; ResizeMix: the own boxes as
for CutMix, the partner's scaled into the pasted box; weights 1. Each image's boxes are flipped
with it (``mirror``). Other methods refuse boxes. Images only.)code", DALI_FLOAT_VEC, nullptr,
                  true)
  .AddOptionalArg("box_labels", "The class of each box as an argument input: int32 ``(N,)`` or "
                  "``(N, 1)``, N the sample's box count; required with ``boxes``.",
                  DALI_INT_VEC, nullptr, true)
  .AddOptionalArg("min_visible", "CutMix and ResizeMix boxes: the smallest share of a box's "
                  "area that must stay visible for it to be kept, in [0, 1] (YOLOX's "
                  "``box_candidates`` area threshold, 0.2).", 0.2f)
  .AddOptionalArg("output_mask", "Also return the mask of each sample (float32, H x W, the "
                  "weight of the sample's own image, in output coordinates).", false)
  .AddOptionalArg("output_params", R"code(Also return, per sample, the float32 vector
``(applied, lam, cy, cx)``: whether mixing was drawn to apply (1 or 0), the ``lam`` and the pixel
centre it used (drawn or explicit). It comes after ``mask`` when both are requested.)code", false)
  .AddRandomSeedArg()
  .AddRandomStateArg();  // dynamic mode (ndd.msda.mix) passes an RNG state per call
// clang-format on

DALI_REGISTER_OPERATOR(msda__Mix, ::msda::Mix<::dali::CPUBackend>, ::dali::CPU);
