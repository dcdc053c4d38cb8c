// The CUDA kernel's work, as host/device functions: the kernel (mix.cu) calls MixThread with its
// blockIdx / threadIdx, and a host harness (tests/kernel_harness.cc) calls it for every block and
// thread of the same planned launch, so that the GPU path's indexing, alignment and memory
// traffic are tested without a GPU. There is no shared memory and no barrier: threads are
// independent, so running them one after another on the host is exact.
//
// Work decomposition. A unit is P consecutive output pixels (all channels) of one frame-row of
// BOTH samples of a pair (i, j = n - 1 - i): the sources of the two outputs are the same two
// input blocks (x_i and x_j at those pixels; with mirror, the mirrored pixel group), so each
// input byte is read once for two outputs. The middle sample of an odd batch is a pair alone.
// Units are numbered pair-major, then frame, row, group (MixedRadix): consecutive units are
// consecutive pixel groups of a row, so a warp's loads and stores are contiguous. The grid is
// persistent (SMs x resident blocks, or fewer when the batch is small); block b takes a
// contiguous range of units and its threads stride through it by the block size, the unit
// position advanced by carries (no division per unit).
//
// The vector path (W a multiple of P, C <= 4, every sample's input and output 16-byte aligned):
// P = 8 pixels for 1- and 2-byte inputs, 4 for float32, so a unit's input block is 8 to 64
// bytes loaded straight into registers with the widest aligned vector loads (read-only path),
// flipped and transposed to pixel-major order in registers, and each output written with
// vector stores (16 bytes per plane for float16 CHW). The mask is computed per unit, kind by kind
// (P values: a box compare, a Gaussian product, P bits of an FMix bit mask); both blocks are
// always read, since together they are each input byte once. ResizeMix reads its resized partner
// inside the box by gathers (calls, to keep the code small): a call a unit for nearest uint8, a
// call a pixel (or a channel of float inputs) otherwise. Every value is
// MixElement (mask.h), the function of the CPU backend and of the reference, so the outputs are
// equal bit for bit. Everything else (odd widths, misaligned samples, C > 4) takes the
// per-pixel fallback: one pixel per unit, scalar accesses, any C. One kernel instance per
// vector C (1-4) and one for the fallback, and for integral inputs the plain instances (below),
// each with its own registers (launch.h WithInstance picks one per launch).
//
// After its units each thread writes its share of the targets (the n x K rows flattened) and
// the params rows.

#ifndef DALI_MSDA_CSRC_MIX_KERNEL_H_
#define DALI_MSDA_CSRC_MIX_KERNEL_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "access.h"
#include "launch.h"
#include "mask.h"

namespace msda {

// ---- the unit position (UnitPos, launch.h), advanced by carries ------------------------------

/// s += step, digit by digit (every digit of `step` is below its radix: one carry at most).
DALI_HOST_DEV inline void Advance(const LaunchGeometry &g, const UnitPos &step, UnitPos &s) {
  s.grp += step.grp;
  int carry = s.grp >= g.groups;
  if (carry) s.grp -= g.groups;
  s.r += step.r + carry;
  carry = s.r >= g.H;
  if (carry) s.r -= g.H;
  s.f += step.f + carry;
  carry = s.f >= g.frames;
  if (carry) s.f -= g.frames;
  s.pair += step.pair + carry;
}

/// Element i (a compile-time index once unrolled) of type T packed in words w.
template <typename T>
DALI_HOST_DEV inline T GetElem(const uint32_t *w, int i) {
  T v;
  if constexpr (sizeof(T) == 4) {
    memcpy(&v, &w[i], 4);
  } else if constexpr (sizeof(T) == 2) {
    const uint16_t h = static_cast<uint16_t>(w[i >> 1] >> (16 * (i & 1)));
    memcpy(&v, &h, 2);
  } else {
    const uint8_t b = static_cast<uint8_t>(w[i >> 2] >> (8 * (i & 3)));
    memcpy(&v, &b, 1);
  }
  return v;
}

/// Sets element i of type T in words w (the words start zeroed).
template <typename T>
DALI_HOST_DEV inline void PutElem(uint32_t *w, int i, T v) {
  if constexpr (sizeof(T) == 4) {
    memcpy(&w[i], &v, 4);
  } else if constexpr (sizeof(T) == 2) {
    uint16_t h;
    memcpy(&h, &v, 2);
    w[i >> 1] |= uint32_t(h) << (16 * (i & 1));
  } else {
    uint8_t b;
    memcpy(&b, &v, 1);
    w[i >> 2] |= uint32_t(b) << (8 * (i & 3));
  }
}

/// A unit's pixels of one source or one output: P pixels x C channels of T, in words.
template <typename T, int C, int P>
struct Block {
  static constexpr int kElems = P * C;
  static constexpr int kBytes = kElems * int(sizeof(T));
  static constexpr int kWords = kBytes / 4;
  uint32_t w[kWords];
};

// ---- the vector path -------------------------------------------------------------------------

/// The box mask of P pixels of row r from column c0 of one sample (mask kind kMaskBox: 0 inside
/// [y0, y1) x [x0, x1), `outside` elsewhere; Mixup's box is empty, ResizeMix's outside is 1).
template <int P>
DALI_HOST_DEV MSDA_INLINE void BoxMask(int y0, int y1, int x0, int x1, float outside, int r,
                                       int c0, float (&m)[P]) {
  // columns [x0, x1) of rows [y0, y1): an empty column range outside those rows
  const int in_rows = r >= y0 && r < y1;
  const int lo = x0 - c0;
  const unsigned width = in_rows ? static_cast<unsigned>(x1 - x0) : 0u;
MSDA_UNROLL
  for (int k = 0; k < P; k++)  // k in [lo, lo + width), as one unsigned compare
    m[k] = static_cast<unsigned>(k - lo) < width ? 0.0f : outside;
}

/// The mask of P pixels of row r from column c0 of a sample whose mask is a table: Gaussian
/// (kMaskGauss: gy[r] * gx[c0 + k], 1 - that when `invert`) or a bit mask (kMaskBits, any other
/// `kind`), at `offset` in the tables or the bits (SampleParams::mask_offset).
template <int P, typename Out, typename In>
DALI_HOST_DEV inline void TableMask(int kind, int64_t offset, int invert,
                                    const KernelArgs<Out, In> &a, int r, int c0, float (&m)[P]) {
  const LaunchGeometry &g = a.g;
  if (kind == kMaskGauss) {
    const float gy = Ld(a.tables + offset + r, MSDA_SITE, kAuxLoad);
    const float *gx = a.tables + offset + GaussColsOffset(g.H) + c0;
    uint32_t x[P];
    if (reinterpret_cast<uintptr_t>(gx) % 16 == 0) {  // P is a multiple of 4
      LoadWords<P * 4>(gx, x, MSDA_SITE, kAuxLoad);
    } else {
MSDA_UNROLL
      for (int k = 0; k < P; k++)
        x[k] = Ld(reinterpret_cast<const uint32_t *>(gx) + k, MSDA_SITE, kAuxLoad);
    }
MSDA_UNROLL
    for (int k = 0; k < P; k++) {
      const float v = gy * GetElem<float>(x, k);  // the product MaskAt computes
      m[k] = invert ? 1.0f - v : v;
    }
    return;
  }
  // P <= 8 bits from bit r * W + c0; with W a multiple of P they lie in one byte
  const int64_t bit = int64_t(r) * g.W + c0;
  const unsigned byte = Ld(a.bits + offset + (bit >> 3), MSDA_SITE, kAuxLoad);
  const int shift = static_cast<int>(bit & 7);
MSDA_UNROLL
  for (int k = 0; k < P; k++) m[k] = (byte >> (shift + k)) & 1u ? 1.0f : 0.0f;
}

/// The mask of P pixels of row r from column c0 (kind by kind: no per-element dispatch).
template <int P, typename Out, typename In>
DALI_HOST_DEV inline void UnitMask(const SampleParams &p, const KernelArgs<Out, In> &a, int r,
                                   int c0, float (&m)[P]) {
  if (p.kind == kMaskGauss || p.kind == kMaskBits)
    TableMask<P>(p.kind, p.mask_offset, p.invert, a, r, c0, m);
  else
    BoxMask<P>(p.y0, p.y1, p.x0, p.x1, p.outside, r, c0, m);
}

/// Input address of (frame f, row r, column c, channel ch) of a sample.
template <typename In>
DALI_HOST_DEV inline const In *InputAt(const In *x, const LaunchGeometry &g, int64_t f, int r,
                                       int c, int ch) {
  if (g.in_planar) return x + f * g.FrameElems() + (int64_t(ch) * g.H + r) * g.W + c;
  return x + f * g.FrameElems() + (int64_t(r) * g.W + c) * g.C + ch;
}

/// Output address of (frame f, row r, column c, channel ch) of a sample.
template <typename Out>
DALI_HOST_DEV inline Out *OutputAt(Out *o, const LaunchGeometry &g, int64_t f, int r, int c,
                                   int ch) {
  if (g.out_planar) return o + f * g.FrameElems() + (int64_t(ch) * g.H + r) * g.W + c;
  return o + f * g.FrameElems() + (int64_t(r) * g.W + c) * g.C + ch;
}

/// The raw source block of output columns [c0, c0 + P) of frame-row (f, r) of x, read with
/// mirror `flip`: the source pixels [s0, s0 + P) as stored (one contiguous run of P pixels for
/// HWC, one per channel plane for CHW), loaded with the widest aligned vector loads. Apart from
/// Arrange so that a caller can issue the loads of both blocks of a pair before using either.
template <typename In, int C, int P>
DALI_HOST_DEV inline void LoadRaw(const In *x, const LaunchGeometry &g, int64_t f, int r, int c0,
                                  int flip, Block<In, C, P> &raw, int site) {
  using B = Block<In, C, P>;
  const int s0 = flip ? g.W - c0 - P : c0;  // the source pixels [s0, s0 + P)
  if (g.in_planar) {
MSDA_UNROLL
    for (int ch = 0; ch < C; ch++)
      LoadWords<P * int(sizeof(In))>(InputAt(x, g, f, r, s0, ch), raw.w + ch * (B::kWords / C),
                                     site);
  } else {
    LoadWords<B::kBytes>(InputAt(x, g, f, r, s0, 0), raw.w, site);
  }
}

/// A raw block (LoadRaw) in pixel-major order (element k * C + ch is output column c0 + k,
/// channel ch): reversed and / or interleaved in registers; HWC without mirror is already so.
template <typename In, int C, int P>
DALI_HOST_DEV inline void Arrange(const LaunchGeometry &g, int flip, const Block<In, C, P> &raw,
                                  Block<In, C, P> &out) {
  using B = Block<In, C, P>;
  if (!g.in_planar && !flip) {
    out = raw;
    return;
  }
MSDA_UNROLL
  for (int k = 0; k < B::kWords; k++) out.w[k] = 0;
  // one branch per case, so that every index below is a compile-time constant
  if (g.in_planar) {
    if (flip) {
MSDA_UNROLL
      for (int k = 0; k < P; k++)
MSDA_UNROLL
        for (int ch = 0; ch < C; ch++)
          PutElem(out.w, k * C + ch, GetElem<In>(raw.w, ch * P + (P - 1 - k)));
    } else {
MSDA_UNROLL
      for (int k = 0; k < P; k++)
MSDA_UNROLL
        for (int ch = 0; ch < C; ch++) PutElem(out.w, k * C + ch, GetElem<In>(raw.w, ch * P + k));
    }
  } else {
MSDA_UNROLL
    for (int k = 0; k < P; k++)
MSDA_UNROLL
      for (int ch = 0; ch < C; ch++)
        PutElem(out.w, k * C + ch, GetElem<In>(raw.w, (P - 1 - k) * C + ch));
  }
}

/// The source block of output columns [c0, c0 + P) of frame-row (f, r) of x, read with mirror
/// `flip`, in pixel-major order (LoadRaw, then Arrange).
template <typename In, int C, int P>
DALI_HOST_DEV inline void LoadSource(const In *x, const LaunchGeometry &g, int64_t f, int r,
                                     int c0, int flip, Block<In, C, P> &out, int site) {
  Block<In, C, P> raw;
  LoadRaw(x, g, f, r, c0, flip, raw, site);
  Arrange(g, flip, raw, out);
}

/// kC channels of one pixel, packed in words as a Block's elements (GetElem).
template <typename In, int kC>
struct PixelVals {
  uint32_t w[(kC * int(sizeof(In)) + 3) / 4];
};

/// Channels [ch0, ch0 + kC) of the resized partner's pixel at output (frame f, row r, column c)
/// of sample s, inside its box (the caller's channels: it never asks for more than C - ch0):
/// nearest, or bilinear rounded to the input type (spec 10), read from device memory (a gather).
/// A call per pixel or per word of channels: its loads are issued together, its source computed
/// once for its channels. Not inlined on the device (it keeps the vector path's code and
/// registers small), so it takes values and global pointers only.
template <int kC, typename Out, typename In>
DALI_HOST_DEV MSDA_NOINLINE PixelVals<In, kC> ResizedPixel(const SampleDesc<Out, In> *s, int H,
                                                          int W, int C, int in_planar, int64_t f,
                                                          int r, int c, int ch0) {
  const In *frame = s->partner + f * (int64_t(H) * W * C);
  auto at = [&](int sr, int sc, int ch) {
    return Ld(in_planar ? frame + (int64_t(ch) * H + sr) * W + sc
                        : frame + (int64_t(sr) * W + sc) * C + ch, MSDA_SITE);
  };
  const SampleParams p = s->p;
  const int flip = s->flip_partner;
  In v[kC];
  if (p.kind == kMaskResizedLinear) {
    const LinearPixel t = ResizedLinearSource(p, H, W, r, c, flip);
    // one channel's four taps at a time (all kC channels' taps at once spilled in the callee with
    // 3-4 channels), each value entering v at its end: v's indices stay static in a rolled loop
#if defined(__CUDA_ARCH__)
#pragma unroll 1
#endif
    for (int k = 0; k < kC; k++) {
      const In x = ConvertOut<In>(LinearBlend(t, [&](int sr, int sc) {
        return LoadIn(at(sr, sc, ch0 + k));
      }));
      MSDA_UNROLL
      for (int t = 0; t + 1 < kC; t++) v[t] = v[t + 1];
      v[kC - 1] = x;
    }
  } else {
    int sr, sc;
    ResizedSource(p, H, W, r, c, flip, &sr, &sc);
    MSDA_UNROLL
    for (int k = 0; k < kC; k++) v[k] = at(sr, sc, ch0 + k);
  }
  PixelVals<In, kC> px;
  MSDA_UNROLL
  for (int k = 0; k < int(sizeof(px.w) / 4); k++) px.w[k] = 0;
  MSDA_UNROLL
  for (int k = 0; k < kC; k++) PutElem(px.w, k, v[k]);
  return px;
}

/// The nearest-neighbour resized partner (ResizeMix, spec 10) of a uint8 sample s at output
/// pixels [c0, c0 + P) of row r (frame f), inside its rows: the pixels inside the box gathered
/// (ResizedSource's rule), the others 0. One call a unit: all its gathers' loads are issued
/// together (a call per pixel waited for each in turn). While the image is narrower than 2^16
/// the column's division is in 32 bits (the same quotient: (c - x0) W < 2^32).
template <int C, int P, typename Out, typename In>
DALI_HOST_DEV MSDA_NOINLINE Block<In, C, P> ResizedNearestUnit(const SampleDesc<Out, In> *s,
                                                               int H, int W, int in_planar,
                                                               int64_t f, int r, int c0) {
  static_assert(sizeof(In) == 1, "uint8: a unit's gathers fit the callee's registers");
  const In *frame = s->partner + f * (int64_t(H) * W * C);
  const SampleParams p = s->p;
  const int flip = s->flip_partner, len = p.x1 - p.x0;
  const int64_t row = int64_t(NearestSource(r, p.y0, p.y1 - p.y0, H)) * W * (in_planar ? 1 : C);
  Block<In, C, P> b;
  MSDA_UNROLL
  for (int k = 0; k < Block<In, C, P>::kWords; k++) b.w[k] = 0;
  auto gather = [&](auto narrow) {
    MSDA_UNROLL
    for (int k = 0; k < P; k++) {
      const int c = c0 + k;
      if (c >= p.x0 && c < p.x1) {
        int sc = decltype(narrow)::value
                     ? static_cast<int>(uint32_t(c - p.x0) * uint32_t(W) / uint32_t(len))
                     : NearestSource(c, p.x0, len, W);
        sc = flip ? W - 1 - sc : sc;
        MSDA_UNROLL
        for (int ch = 0; ch < C; ch++)
          PutElem(b.w, k * C + ch,
                  Ld(in_planar ? frame + int64_t(ch) * H * W + row + sc
                               : frame + row + int64_t(sc) * C + ch, MSDA_SITE));
      }
    }
  };
  if (W < 65536)
    gather(std::true_type{});
  else
    gather(std::false_type{});
  return b;
}

/// Replaces element i of type T in words w.
template <typename T>
DALI_HOST_DEV inline void SetElem(uint32_t *w, int i, T v) {
  constexpr int kBits = 8 * sizeof(T), kPer = 4 / sizeof(T);
  if constexpr (sizeof(T) == 4) {
    memcpy(&w[i], &v, 4);
  } else {
    const int shift = kBits * (i % kPer);
    w[i / kPer] &= ~(((1u << kBits) - 1) << shift);
    PutElem(w, i, v);
  }
}

/// The partner block of a ResizeMix sample at a unit of a row inside its box: read resized
/// (gathers: see ResizedNearestUnit and ResizedPixel).
template <int C, int P, typename Out, typename In>
DALI_HOST_DEV MSDA_INLINE void ResizedPartner(const SampleDesc<Out, In> *sp,
                                              const LaunchGeometry &g, const UnitPos &u, int c0,
                                              Block<In, C, P> &partner) {
  const SampleDesc<Out, In> &s = *sp;
  if constexpr (sizeof(In) == 1) {
    if (s.p.kind == kMaskResized) {
      // nearest, uint8: a call a unit, its block the whole unit's partner, since outside the
      // box the mask is exactly 1, where MixElement takes the own value and never reads the
      // partner's (0 there)
      const Block<In, C, P> rz = ResizedNearestUnit<C, P>(sp, g.H, g.W, g.in_planar, u.f, u.r, c0);
      MSDA_UNROLL
      for (int k = 0; k < Block<In, C, P>::kWords; k++) partner.w[k] = rz.w[k];
      return;
    }
  }
  // bilinear, or float inputs: a gather per pixel
  MSDA_UNROLL
  for (int k = 0; k < P; k++) {
    const int c = c0 + k;
    if (c >= s.p.x0 && c < s.p.x1) {
      // G channels a call, G dividing C, in one returned word: all of uint8's, two float16s of
      // 2, else one (more returned values, or a count of them as an argument, made the callee
      // or its caller spill: sass_stats.py)
      constexpr int G = sizeof(In) == 1 ? C : sizeof(In) == 2 && C == 2 ? 2 : 1;
      static_assert(C % G == 0, "whole groups: a call reads no channel past C");
      MSDA_UNROLL
      for (int ch0 = 0; ch0 < C; ch0 += G) {
        const PixelVals<In, G> px =
            ResizedPixel<G>(sp, g.H, g.W, C, g.in_planar, u.f, u.r, c, ch0);
        MSDA_UNROLL
        for (int t = 0; t < G; t++)
          SetElem(partner.w, k * C + ch0 + t, GetElem<In>(px.w, t));
      }
    }
  }
}

/// One sample's output of a unit: MixElement for every pixel and channel from its own block and
/// its partner's, in the output's layout (vector stores).
template <bool kNorm, bool kOutPlanar, int C, int P, typename Out, typename In>
DALI_HOST_DEV MSDA_INLINE void StoreUnit(const SampleDesc<Out, In> &s, const LaunchGeometry &g,
                                         int64_t f, int r, int c0, const float (&m)[P],
                                         const Block<In, C, P> &own,
                                         const Block<In, C, P> &partner, const float (&mean)[C],
                                         const float (&inv)[C]) {
  Block<Out, C, P> o;
  MSDA_UNROLL
  for (int k = 0; k < Block<Out, C, P>::kWords; k++) o.w[k] = 0;
  MSDA_UNROLL
  for (int k = 0; k < P; k++) {
    MSDA_UNROLL
    for (int ch = 0; ch < C; ch++) {
      const Out v = MixElement<kNorm, Out, In>(m[k], GetElem<In>(own.w, k * C + ch),
                                               GetElem<In>(partner.w, k * C + ch), mean[ch],
                                               inv[ch]);
      PutElem(o.w, kOutPlanar ? ch * P + k : k * C + ch, v);
    }
  }
  if (kOutPlanar) {
    constexpr int kPlaneWords = Block<Out, C, P>::kWords / C;
    MSDA_UNROLL
    for (int ch = 0; ch < C; ch++)
      StoreWords<P * int(sizeof(Out))>(OutputAt(s.out, g, f, r, c0, ch), o.w + ch * kPlaneWords,
                                       MSDA_SITE);
  } else {
    StoreWords<Block<Out, C, P>::kBytes>(OutputAt(s.out, g, f, r, c0, 0), o.w, MSDA_SITE);
  }
}

/// StoreUnit for this launch's layout and normalisation. Without normalisation a mix of two
/// types is the normalised one with mean 0 and 1 / std 1 ((v - 0) * 1 is v, and the conversion
/// canonicalises NaNs either way), so only same-type mixes need the plain instance (it copies
/// the values taken where M is 1 or 0 bit for bit).
template <int C, int P, typename Out, typename In>
DALI_HOST_DEV MSDA_INLINE void StoreUnitAs(const SampleDesc<Out, In> &s, const LaunchGeometry &g,
                                           int64_t f, int r, int c0, const float (&m)[P],
                                           const Block<In, C, P> &own,
                                           const Block<In, C, P> &partner, const float (&mean)[C],
                                           const float (&inv)[C]) {
  constexpr bool kSame = std::is_same_v<Out, In>;
  if (kSame && !g.normalize) {
    if (g.out_planar)
      StoreUnit<false, true>(s, g, f, r, c0, m, own, partner, mean, inv);
    else
      StoreUnit<false, false>(s, g, f, r, c0, m, own, partner, mean, inv);
  } else {
    if (g.out_planar)
      StoreUnit<true, true>(s, g, f, r, c0, m, own, partner, mean, inv);
    else
      StoreUnit<true, false>(s, g, f, r, c0, m, own, partner, mean, inv);
  }
}

/// P mask values of frame 0's row r of a sample's mask output.
template <int P>
DALI_HOST_DEV inline void StoreMask(float *mask, const LaunchGeometry &g, int r, int c0,
                                    const float (&m)[P]) {
  float *dst = mask + int64_t(r) * g.W + c0;
  if (g.mask_vec) {
    uint32_t w[P];
    MSDA_UNROLL
    for (int k = 0; k < P; k++) {
      w[k] = 0;
      PutElem(w, k, m[k]);
    }
    StoreWords<P * 4>(dst, w, MSDA_SITE, kAuxStore);
  } else {
    MSDA_UNROLL
    for (int k = 0; k < P; k++) St(dst + k, m[k], MSDA_SITE, kAuxStore);
  }
}

/// The mixed label map of sample `s` at `count` pixels of row r from column c0 (spec 11:
/// SegSource's rule for mask parameters `p`, scalar accesses: a map is a byte or a word a
/// pixel); bit k of `own_bits` says whether pixel c0 + k takes the own label (TakesOwnLabel).
/// The general path calls it through SegUnit (not inlined on the device, so that the maps' code
/// and registers stay off the image path of launches without maps: hence values and global
/// pointers only, as ResizedPixel: a mask array passed by address would live in local
/// memory); the plain instance of masks inlines it, with a box's `p` (nothing is resized there).
template <typename T, typename Out, typename In>
DALI_HOST_DEV MSDA_INLINE void SegPixels(const SampleDesc<Out, In> *s, const SampleParams &p,
                                         int H, int W, int r, int c0, int count,
                                         unsigned own_bits) {
  const T *own = static_cast<const T *>(s->seg_own);
  const T *partner = static_cast<const T *>(s->seg_partner);
  T *out = static_cast<T *>(s->seg_out) + int64_t(r) * W + c0;
  const int flip_own = s->flip_own, flip_partner = s->flip_partner;
  for (int k = 0; k < count; k++) {
    bool from_partner;
    int sr, sc;
    SegSource(p, H, W, r, c0 + k, (own_bits >> k) & 1u, flip_own, flip_partner, &from_partner,
              &sr, &sc);
    St(out + k, Ld((from_partner ? partner : own) + int64_t(sr) * W + sc, MSDA_SITE, kAuxLoad),
       MSDA_SITE, kAuxStore);
  }
}

template <typename Out, typename In>
DALI_HOST_DEV MSDA_NOINLINE void SegUnit(const SampleDesc<Out, In> *s, int seg_bytes, int H,
                                         int W, int r, int c0, int count, unsigned own_bits) {
  if (seg_bytes == 1)
    SegPixels<uint8_t>(s, s->p, H, W, r, c0, count, own_bits);
  else if (seg_bytes == 4)
    SegPixels<int32_t>(s, s->p, H, W, r, c0, count, own_bits);
}

/// TakesOwnLabel of each of P mask values, as bits (bit k: pixel k).
template <int P>
DALI_HOST_DEV MSDA_INLINE unsigned OwnLabelBits(const float (&m)[P]) {
  unsigned bits = 0;
  MSDA_UNROLL
  for (int k = 0; k < P; k++) bits |= unsigned(TakesOwnLabel(m[k])) << k;
  return bits;
}

/// One unit of the vector path: pair `pair`, frame-row (f, r), pixel group `grp`. Both blocks
/// are read (each input byte once for the two outputs); then each sample of the pair in turn
/// computes its mask and writes its output. The loop over the two is unrolled on the device:
/// rolled, it selected the own and partner blocks into copies each turn, and with 4 channels of
/// 2- and 4-byte inputs those copies spilled (benchmarks/sass_stats.py).
template <int C, typename Out, typename In>
DALI_HOST_DEV MSDA_INLINE void VectorUnit(const KernelArgs<Out, In> &a, const UnitPos &u,
                                          const float (&mean)[C], const float (&inv)[C]) {
  constexpr int P = PixelsPerUnit<In>();
  using B = Block<In, C, P>;
  const LaunchGeometry &g = a.g;
  const int i = u.pair, j = g.n - 1 - u.pair;
  const int c0 = u.grp * P;
  // both blocks' loads issued before either is arranged (the middle of an odd batch is its own
  // partner, mask 1: its block is read twice, from the same address)
  const int flip_i = a.samples[i].flip_own, flip_j = a.samples[j].flip_own;
  B raw_i, raw_j, xi, xj;
  LoadRaw(a.samples[i].own, g, u.f, u.r, c0, flip_i, raw_i, MSDA_SITE);
  LoadRaw(a.samples[j].own, g, u.f, u.r, c0, flip_j, raw_j, MSDA_SITE);
  Arrange(g, flip_i, raw_i, xi);
  Arrange(g, flip_j, raw_j, xj);
  MSDA_UNROLL
  for (int which = 0; which < 2; which++) {
    if (which && j == i) break;
    const SampleDesc<Out, In> *sp = a.samples + (which ? j : i);
    const SampleDesc<Out, In> &s = *sp;
    B own, partner;
    MSDA_UNROLL
    for (int k = 0; k < B::kWords; k++) {
      own.w[k] = which ? xj.w[k] : xi.w[k];
      partner.w[k] = which ? xi.w[k] : xj.w[k];
    }
    float m[P];
    UnitMask<P>(s.p, a, u.r, c0, m);
    if (IsResized(s.p.kind) && u.r >= s.p.y0 && u.r < s.p.y1)
      ResizedPartner<C, P>(sp, g, u, c0, partner);
    StoreUnitAs<C, P>(s, g, u.f, u.r, c0, m, own, partner, mean, inv);
    if (u.f == 0 && s.mask) StoreMask<P>(s.mask, g, u.r, c0, m);
    if (g.seg_bytes)  // images: f == 0
      SegUnit(sp, g.seg_bytes, g.H, g.W, u.r, c0, P, OwnLabelBits(m));
  }
}

// ---- the plain vector path: nothing to canonicalise, nothing resized -----------------------
//
// Most batches are Mixup, CutMix or HMix of uint8 images: every mask a box (0 inside, `outside`
// elsewhere), no label maps, no mask outputs. For them a kernel instance of its own (PlainLaunch
// picks it on the host) does only what they need, with the same functions and in the same order
// as MixElement, so its outputs are the same bit for bit:
// - MixValue's selects are left out: for integral inputs Blend(m, a, b) equals MixValue(m, a, b)
//   at every m in [0, 1] (at m == 1 it is 1 * a + 0 * b = a exactly, at m == 0 it is b: a and b
//   are finite and never -0);
// - no NaN can arise ((v - mean) * inv_std of a finite v is finite or infinite while every
//   inv_std is finite, which PlainLaunch requires), so none is canonicalised, and float16
//   outputs are converted two at a time (one F2FP per pair);
// - each input element is converted to float once for both outputs of the pair, and the loads
//   of both blocks are issued before either is used.
// GMix's Gaussian masks and FMix's and ClassMix's bit masks (values in [0, 1]) take the same path
// in a second plain instance (kPlainMasks), whose masks are made kind by kind as on the general
// path (TableMask), and which also writes the mask rows and the mixed label maps where a launch
// has them (segmentation batches: uint8 images and their maps); the box-only instance
// (kPlainBoxes) keeps none of that code.

/// float32 -> Out for a value that is not a NaN (ConvertOut without its NaN check).
template <typename Out>
DALI_HOST_DEV inline Out ConvertFinite(float v) {
#ifdef __CUDA_ARCH__
  if constexpr (std::is_same_v<Out, dali::float16>) return dali::float16(v);
#endif
  return ConvertOut<Out>(v);
}

/// N values (in the output's element order) converted to Out and packed into words: float16
/// two at a time (one F2FP on the GPU, round to nearest even as __float2half_rn).
template <typename Out, int N>
DALI_HOST_DEV MSDA_INLINE void PackFinite(const float (&v)[N], uint32_t *w) {
  if constexpr (sizeof(Out) == 4) {
MSDA_UNROLL
    for (int e = 0; e < N; e++) memcpy(&w[e], &v[e], 4);
  } else if constexpr (sizeof(Out) == 2) {
    static_assert(N % 2 == 0, "float16 blocks are whole words");
MSDA_UNROLL
    for (int e = 0; e < N; e += 2) {
#ifdef __CUDA_ARCH__
      const __half2 h = __floats2half2_rn(v[e], v[e + 1]);
      memcpy(&w[e / 2], &h, 4);
#else
      w[e / 2] = 0;
      PutElem(w, e, ConvertFinite<Out>(v[e]));
      PutElem(w, e + 1, ConvertFinite<Out>(v[e + 1]));
#endif
    }
  } else {
MSDA_UNROLL
    for (int e = 0; e < N / 4; e++) w[e] = 0;
MSDA_UNROLL
    for (int e = 0; e < N; e++) PutElem(w, e, ConvertFinite<Out>(v[e]));
  }
}

/// One sample's P x C outputs of a plain unit in the output's element order, from the float
/// values of its own block (`x`) and its partner's (`y`), its mask m and (1 - m) per pixel,
/// converted and written with vector stores.
template <int C, int P, typename Out>
DALI_HOST_DEV MSDA_INLINE void PlainStore(Out *out, const LaunchGeometry &g, int64_t f, int r,
                                          int c0, const float (&m)[P],
                                          const float (&x)[P * C], const float (&y)[P * C],
                                          const float (&mean)[C], const float (&inv)[C]) {
  float v[P * C];
  const bool planar = g.out_planar;
MSDA_UNROLL
  for (int k = 0; k < P; k++) {
MSDA_UNROLL
    for (int ch = 0; ch < C; ch++) {
      const float b = Blend(m[k], x[k * C + ch], y[k * C + ch]);  // MixValue: see above
      const float n = Normalize(b, mean[ch], inv[ch]);
      if (planar)
        v[ch * P + k] = n;
      else
        v[k * C + ch] = n;
    }
  }
  uint32_t w[P * C * int(sizeof(Out)) / 4];
  PackFinite<Out>(v, w);
  if (planar) {
    constexpr int kPlaneWords = P * int(sizeof(Out)) / 4;
MSDA_UNROLL
    for (int ch = 0; ch < C; ch++)
      StoreWords<P * int(sizeof(Out))>(OutputAt(out, g, f, r, c0, ch), w + ch * kPlaneWords,
                                       MSDA_SITE);
  } else {
    StoreWords<P * C * int(sizeof(Out))>(OutputAt(out, g, f, r, c0, 0), w, MSDA_SITE);
  }
}

/// The P mask values of a plain unit's sample: its box (kPlainBoxes: every mask a box), or its
/// box, Gaussian or bit mask (kPlainMasks), its descriptor's fields read one by one.
template <int kPlain, int P, typename Out, typename In>
DALI_HOST_DEV MSDA_INLINE void PlainMask(const SampleDesc<Out, In> *d,
                                         const KernelArgs<Out, In> &a, int r, int c0,
                                         float (&m)[P]) {
  if constexpr (kPlain == kPlainMasks) {
    const int kind = Ld(&d->p.kind, MSDA_SITE, kDescLoad);
    if (kind != kMaskBox) {
      TableMask<P>(kind, Ld(&d->p.mask_offset, MSDA_SITE, kDescLoad),
                   Ld(&d->p.invert, MSDA_SITE, kDescLoad), a, r, c0, m);
      return;
    }
  }
  BoxMask<P>(Ld(&d->p.y0, MSDA_SITE, kDescLoad), Ld(&d->p.y1, MSDA_SITE, kDescLoad),
             Ld(&d->p.x0, MSDA_SITE, kDescLoad), Ld(&d->p.x1, MSDA_SITE, kDescLoad),
             Ld(&d->p.outside, MSDA_SITE, kDescLoad), r, c0, m);
}

/// A plain unit's mask rows (frame 0 of the samples whose masks are outputs), written as soon as
/// the masks are made (kPlainMasks; the middle of an odd batch writes the same values twice).
template <int P, typename Out, typename In>
DALI_HOST_DEV MSDA_INLINE void PlainMaskRows(const SampleDesc<Out, In> *di,
                                             const SampleDesc<Out, In> *dj,
                                             const LaunchGeometry &g, const UnitPos &u, int c0,
                                             const float (&mi)[P], const float (&mj)[P]) {
  if (u.f != 0) return;
  float *mask_i = Ld(&di->mask, MSDA_SITE, kDescLoad);
  float *mask_j = Ld(&dj->mask, MSDA_SITE, kDescLoad);
  if (mask_i) StoreMask<P>(mask_i, g, u.r, c0, mi);
  if (mask_j) StoreMask<P>(mask_j, g, u.r, c0, mj);
}

/// A plain unit's part of the mixed label maps (spec 11; images only) from the TakesOwnLabel
/// bits of each sample's mask (kPlainMasks), written after the images, so that only the bits
/// are live across the image work (the masks themselves made the instance spill), inline (a
/// call here, SegUnit's, made it spill too).
template <int P, typename Out, typename In>
DALI_HOST_DEV MSDA_INLINE void PlainMaps(const SampleDesc<Out, In> *di,
                                         const SampleDesc<Out, In> *dj, const LaunchGeometry &g,
                                         const UnitPos &u, int c0, unsigned own_i,
                                         unsigned own_j) {
  const SampleParams not_resized{};  // kind kMaskBox: SegSource's rule without its ResizeMix box
  if (g.seg_bytes == 1) {
    SegPixels<uint8_t>(di, not_resized, g.H, g.W, u.r, c0, P, own_i);
    SegPixels<uint8_t>(dj, not_resized, g.H, g.W, u.r, c0, P, own_j);
  } else if (g.seg_bytes == 4) {
    SegPixels<int32_t>(di, not_resized, g.H, g.W, u.r, c0, P, own_i);
    SegPixels<int32_t>(dj, not_resized, g.H, g.W, u.r, c0, P, own_j);
  }
}

/// One unit of a plain instance: pair `pair` (samples i and j = n - 1 - i; the middle of an
/// odd batch is i == j, mask 1, written twice with the same values), frame-row (f, r), pixel
/// group `grp`. Without normalisation mean is 0 and inv_std 1: (v - 0) * 1 is v.
template <int C, int kPlain, typename Out, typename In>
DALI_HOST_DEV MSDA_INLINE void PlainUnit(const KernelArgs<Out, In> &a, const UnitPos &u,
                                         const float (&mean)[C], const float (&inv)[C]) {
  constexpr int P = PixelsPerUnit<In>();
  constexpr int N = P * C;
  using B = Block<In, C, P>;
  const LaunchGeometry &g = a.g;
  const SampleDesc<Out, In> *di = a.samples + u.pair, *dj = a.samples + (g.n - 1 - u.pair);
  const int c0 = u.grp * P;
  // both blocks in flight before either is used
  const In *xi = Ld(&di->own, MSDA_SITE, kDescLoad), *xj = Ld(&dj->own, MSDA_SITE, kDescLoad);
  const int flip_i = Ld(&di->flip_own, MSDA_SITE, kDescLoad);
  const int flip_j = Ld(&dj->flip_own, MSDA_SITE, kDescLoad);
  B raw_i, raw_j;
  LoadRaw(xi, g, u.f, u.r, c0, flip_i, raw_i, MSDA_SITE);
  LoadRaw(xj, g, u.f, u.r, c0, flip_j, raw_j, MSDA_SITE);
  float mi[P], mj[P];
  PlainMask<kPlain, P>(di, a, u.r, c0, mi);
  PlainMask<kPlain, P>(dj, a, u.r, c0, mj);
  unsigned own_i = 0, own_j = 0;
  constexpr bool kMasksAndMaps = kPlain == kPlainMasks && PlainWritesMasksAndMaps(C);
  if constexpr (kMasksAndMaps) {
    PlainMaskRows<P>(di, dj, g, u, c0, mi, mj);
    own_i = OwnLabelBits(mi);
    own_j = OwnLabelBits(mj);
  }
  Out *oi = Ld(&di->out, MSDA_SITE, kDescLoad), *oj = Ld(&dj->out, MSDA_SITE, kDescLoad);
  B bi, bj;
  Arrange(g, flip_i, raw_i, bi);
  Arrange(g, flip_j, raw_j, bj);
  float vi[N], vj[N];  // each input element converted once, for both outputs
MSDA_UNROLL
  for (int e = 0; e < N; e++) {
    vi[e] = LoadIn(GetElem<In>(bi.w, e));
    vj[e] = LoadIn(GetElem<In>(bj.w, e));
  }
  PlainStore<C, P>(oi, g, u.f, u.r, c0, mi, vi, vj, mean, inv);
  PlainStore<C, P>(oj, g, u.f, u.r, c0, mj, vj, vi, mean, inv);
  if constexpr (kMasksAndMaps) PlainMaps<P>(di, dj, g, u, c0, own_i, own_j);
}


// ---- the per-pixel fallback: any C, any alignment --------------------------------------------

template <typename Out, typename In>
DALI_HOST_DEV inline void PixelOfSample(const KernelArgs<Out, In> &a, const SampleDesc<Out, In> &s,
                                        const UnitPos &u, int c) {
  const LaunchGeometry &g = a.g;
  const float m = MaskAt(s.p, a.tables, a.bits, g.H, g.W, u.r, c);
  const int cs = s.flip_own ? g.W - 1 - c : c, co = s.flip_partner ? g.W - 1 - c : c;
  const bool gather = IsResized(s.p.kind) && u.r >= s.p.y0 && u.r < s.p.y1 && c >= s.p.x0 &&
                      c < s.p.x1;
  for (int ch = 0; ch < g.C; ch++) {
    In x{}, y{};
    if (m != 0.0f) x = Ld(InputAt(s.own, g, u.f, u.r, cs, ch), MSDA_SITE);
    if (m != 1.0f)
      y = gather ? GetElem<In>(
                       ResizedPixel<1>(&s, g.H, g.W, g.C, g.in_planar, u.f, u.r, c, ch).w, 0)
                 : Ld(InputAt(s.partner, g, u.f, u.r, co, ch), MSDA_SITE);
    const Out v = g.normalize
        ? MixElement<true, Out, In>(m, x, y, Ld(a.norm + ch, MSDA_SITE, kAuxLoad),
                                    Ld(a.norm + g.C + ch, MSDA_SITE, kAuxLoad))
        : MixElement<false, Out, In>(m, x, y, 0.0f, 1.0f);
    St(OutputAt(s.out, g, u.f, u.r, c, ch), v, MSDA_SITE);
  }
  if (u.f == 0 && s.mask) St(s.mask + int64_t(u.r) * g.W + c, m, MSDA_SITE, kAuxStore);
  if (g.seg_bytes) SegUnit(&s, g.seg_bytes, g.H, g.W, u.r, c, 1, unsigned(TakesOwnLabel(m)));
}

template <typename Out, typename In>
DALI_HOST_DEV inline void PixelUnit(const KernelArgs<Out, In> &a, const UnitPos &u) {
  const int i = u.pair, j = a.g.n - 1 - u.pair;
  PixelOfSample(a, a.samples[i], u, u.grp);
  if (j != i) PixelOfSample(a, a.samples[j], u, u.grp);
}

// ---- the thread ------------------------------------------------------------------------------

/// Units [b0, b1) of the block, `thread` first, stepping by the block size.
template <int C, int kPlain, typename Out, typename In>
DALI_HOST_DEV MSDA_INLINE void RunUnits(const KernelArgs<Out, In> &a, int64_t u0, int64_t u1) {
  const LaunchGeometry &g = a.g;
  float mean[C > 0 ? C : 1], inv[C > 0 ? C : 1];
  if constexpr (C > 0) {
MSDA_UNROLL
    for (int ch = 0; ch < C; ch++) {
      mean[ch] = g.normalize ? Ld(a.norm + ch, MSDA_SITE, kAuxLoad) : 0.0f;
      inv[ch] = g.normalize ? Ld(a.norm + C + ch, MSDA_SITE, kAuxLoad) : 1.0f;
    }
  }
  UnitPos pos = UnitAt(g, u0);
  int64_t it = 0;
  for (int64_t u = u0; u < u1; u += g.threads, it++) {
    NewIteration(it);
    if constexpr (kPlain != kGeneral)
      PlainUnit<C, kPlain>(a, pos, mean, inv);
    else if constexpr (C > 0)
      VectorUnit<C>(a, pos, mean, inv);
    else
      PixelUnit(a, pos);
    Advance(g, g.step, pos);
  }
}

/// The targets and params rows: element e of the flattened n x K targets for e = t, t + T, ...
/// (t the thread's index in the grid, T the grid's threads), then params rows t, t + T, ...
template <typename Out, typename In>
DALI_HOST_DEV inline void WriteTargets(const KernelArgs<Out, In> &a, int64_t t, int64_t T) {
  const LaunchGeometry &g = a.g;
  if (g.K > 0) {
    int64_t s = t / g.K;
    int k = static_cast<int>(t - s * g.K);
    const int64_t ds = T / g.K;
    const int dk = static_cast<int>(T - ds * g.K);
    for (int64_t it = 0; s < g.n; it++) {
      NewIteration(-1 - it);
      const SampleDesc<Out, In> &d = a.samples[s];
      const TargetSpec &ts = d.t;
      const float v = ts.soft_row >= 0
          ? Ld(a.soft + int64_t(ts.soft_row) * g.K + k, MSDA_SITE, kAuxLoad)
          : k == ts.ya ? ts.va : k == ts.yb ? ts.vb : ts.fill;
      St(d.target + k, v, MSDA_SITE, kAuxStore);
      k += dk;
      s += ds;
      if (k >= g.K) {
        k -= g.K;
        s++;
      }
    }
  }
  for (int64_t s = t; s < g.n; s += T) {
    if (!a.samples[s].params) break;  // all or none
    NewIteration(INT64_MIN + s / T);
    for (int k = 0; k < 4; k++)
      St(a.samples[s].params + k, Ld(a.param_rows + 4 * s + k, MSDA_SITE, kAuxLoad), MSDA_SITE,
         kAuxStore);
  }
}

/// The work of thread `thread` of block `block` (the kernel's body) for a launch whose vector
/// path has C channels (LaunchGeometry::vec_c; 0: the per-pixel fallback), general or plain
/// (LaunchGeometry::plain: PlainKind). One kernel instance per C and kind, so that each gets the
/// registers it needs, not those of the largest.
template <int C, int kPlain, typename Out, typename In>
DALI_HOST_DEV inline void MixThread(const KernelArgs<Out, In> &a, int block, int thread) {
  const LaunchGeometry &g = a.g;
  const int64_t b0 = int64_t(block) * g.units_per_block;
  const int64_t b1 = b0 + g.units_per_block < g.units ? b0 + g.units_per_block : g.units;
  const int64_t u0 = b0 + thread;
  if (u0 < b1) RunUnits<C, kPlain>(a, u0, b1);
  WriteTargets(a, int64_t(block) * g.threads + thread, int64_t(g.blocks) * g.threads);
}

}  // namespace msda

#endif  // DALI_MSDA_CSRC_MIX_KERNEL_H_
