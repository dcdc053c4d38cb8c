// The previous kernel (main as of 2026-11-28, dali_msda/csrc/mix/kernel.h then), kept for
// benchmarks/kernel_bench.cu only until a GPU has measured it beside today's: it is no longer
// in the op. Tiles of rows x columns per block, staged through shared memory in two phases with
// a barrier between them (StageTile, ComputeTile). Changes from the original, all outside its
// design: the mask is read through OldMaskAt, the original MaskAt on today's table layout (the
// Gaussian column factors at GaussColsOffset; FMix masks as H x W floats, kMaskBits standing for
// the old kMaskTable); names that the new kernel.h also defines are prefixed (OldKernelArgs,
// OldMisaligned, kOldBlockThreads); today's names of shared fields (mask_offset, own /
// partner). Its outputs are compared with the new kernel's, bit for bit, by the bench.

#ifndef DALI_MSDA_BENCHMARKS_OLD_KERNEL_CUH_
#define DALI_MSDA_BENCHMARKS_OLD_KERNEL_CUH_

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "mix/kernel.h"

namespace msda {
namespace old {

/// The original MaskAt: FMix masks as float tables (H x W values at mask_offset).
DALI_HOST_DEV inline float OldMaskAt(const SampleParams &p, const float *tables, int H, int W,
                                     int row, int col) {
  if (p.kind == kMaskBits) return tables[p.mask_offset + int64_t(row) * W + col];
  if (p.kind == kMaskGauss) {
    float g = tables[p.mask_offset + row] * tables[p.mask_offset + GaussColsOffset(H) + col];
    return p.invert ? 1.0f - g : g;
  }
  bool inside = row >= p.y0 && row < p.y1 && col >= p.x0 && col < p.x1;
  return inside ? 0.0f : p.outside;
}

struct TileGeometry {
  int64_t frames = 1;
  int H = 0, W = 0, C = 1;
  int in_planar = 0, out_planar = 0;  // channels first within a frame (CHW) or last (HWC)
  int tile_rows = 1, tile_cols = 1;
  int col_tiles = 1;       // ceil(W / tile_cols)
  int64_t tiles = 0;       // per sample: ceil(frames * H / tile_rows) * col_tiles
  int tiles_per_block = 1;
  int stage_cap = 0;       // elements of In per staged source row segment, incl. 16 B of slack
  int normalize = 0;
  int K = 0;
  DALI_HOST_DEV int64_t Rows() const { return frames * H; }
  DALI_HOST_DEV int64_t FrameElems() const { return int64_t(H) * W * C; }
  /// Elements of In in the shared memory of one block: 2 sources x tile_rows x segments.
  DALI_HOST_DEV int64_t StageElems() const {
    return int64_t(2) * tile_rows * (in_planar ? C : 1) * stage_cap;
  }
};

// ---- vector accesses: 16 bytes, aligned. The host build checks the alignment that a GPU would
// fault on, so that the harness catches a misaligned vector access.
struct alignas(16) Vec16 {
  uint32_t w[4];
};

#ifndef __CUDA_ARCH__
/// Host builds count the 16-byte accesses that are not 16-byte aligned (a GPU would fault).
inline int64_t &OldMisaligned() {
  static int64_t count = 0;
  return count;
}
#endif

DALI_HOST_DEV inline void CheckAligned(const void *p) {
#ifndef __CUDA_ARCH__
  if (reinterpret_cast<uintptr_t>(p) % 16 != 0) OldMisaligned()++;
#endif
}

DALI_HOST_DEV inline Vec16 Load16(const void *p) {
  CheckAligned(p);
  return *static_cast<const Vec16 *>(p);
}

DALI_HOST_DEV inline void Store16(void *p, const Vec16 &v) {
  CheckAligned(p);
  *static_cast<Vec16 *>(p) = v;
}

/// Copies n elements from src to dst, which must agree modulo 16 bytes: 16-byte copies for the
/// aligned body, single elements at the ends; the threads share the work.
template <typename T>
DALI_HOST_DEV inline void CopyRange(T *__restrict__ dst, const T *__restrict__ src, int64_t n,
                                    int thread, int nthreads) {
  constexpr int V = 16 / sizeof(T);
  const int64_t mis = (reinterpret_cast<uintptr_t>(src) / sizeof(T)) % V;
  const int64_t head = mis ? (V - mis < n ? V - mis : n) : 0;
  const int64_t body = (n - head) / V;
  for (int64_t k = thread; k < head; k += nthreads) dst[k] = src[k];
  for (int64_t k = thread; k < body; k += nthreads)
    Store16(dst + head + k * V, Load16(src + head + k * V));
  for (int64_t k = head + body * V + thread; k < n; k += nthreads) dst[k] = src[k];
}

/// Where tile `tile` of a sample lies: frame-rows [q0, q1), output columns [c0, c1).
struct TileSpan {
  int64_t q0, q1;
  int c0, c1;
};

DALI_HOST_DEV inline TileSpan TileAt(const TileGeometry &g, int64_t tile) {
  TileSpan s;
  const int64_t row_tile = tile / g.col_tiles;
  const int col_tile = static_cast<int>(tile - row_tile * g.col_tiles);
  s.q0 = row_tile * g.tile_rows;
  s.q1 = s.q0 + g.tile_rows < g.Rows() ? s.q0 + g.tile_rows : g.Rows();
  s.c0 = col_tile * g.tile_cols;
  s.c1 = s.c0 + g.tile_cols < g.W ? s.c0 + g.tile_cols : g.W;
  return s;
}

/// Output columns [a, b) of row r that need the sample (need_self) or the partner: a box row
/// needs the partner inside the box and the sample outside it (unless the outside weight is
/// 0 or 1); a Gaussian or table mask needs both everywhere.
struct ColumnNeeds {
  int self_a0, self_a1, self_b0, self_b1;  // up to two ranges for the sample
  int other_a0, other_a1;                  // one range for the partner
};

DALI_HOST_DEV inline ColumnNeeds NeedsOfRow(const SampleParams &p, int r, int c0, int c1) {
  ColumnNeeds n{c0, c1, c1, c1, c0, c1};
  if (p.kind != kMaskBox && !IsResized(p.kind)) return n;
  const bool row_in_box = r >= p.y0 && r < p.y1 && p.x0 < p.x1;
  const int x0 = row_in_box ? (p.x0 > c0 ? (p.x0 < c1 ? p.x0 : c1) : c0) : c1;
  const int x1 = row_in_box ? (p.x1 > c0 ? (p.x1 < c1 ? p.x1 : c1) : c0) : c1;
  // the sample: everything outside [x0, x1), if its weight there is not 0
  if (p.outside == 0.0f) {
    n.self_a0 = n.self_a1 = n.self_b0 = n.self_b1 = c1;
  } else {
    n.self_a0 = c0;
    n.self_a1 = x0;
    n.self_b0 = x1;
    n.self_b1 = c1;
  }
  // the partner: the box, or everything when the outside weight is not 1; nothing staged for a
  // resized partner (ComputeTile reads it from device memory: ResizedPartnerAt)
  if (p.outside == 1.0f) {
    n.other_a0 = x0;
    n.other_a1 = x1;
  }
  if (IsResized(p.kind)) n.other_a0 = n.other_a1 = c1;
  return n;
}

/// Source columns of output columns [a, b) of a source read with mirror `flip`.
DALI_HOST_DEV inline void SourceColumns(int W, int flip, int a, int b, int *s0, int *s1) {
  *s0 = flip ? W - b : a;
  *s1 = flip ? W - a : b;
}

/// Staged segment of one source for tile row k and channel plane ch (plane 0 for HWC input):
/// its shared-memory base, aligned like the source row it copies so that 16-byte copies line
/// up. Element (source column sc, channel c) of the tile's column range sits at
/// Stage(...)[(sc - src_c0) * C + c] (HWC) or [sc - src_c0] (CHW).
template <typename In>
DALI_HOST_DEV inline In *StageSegment(In *stage, const TileGeometry &g, int which, int k, int ch,
                                      const In *src_row_start) {
  constexpr int V = 16 / sizeof(In);
  const int segs = g.in_planar ? g.C : 1;
  In *base = stage + ((int64_t(which) * g.tile_rows + k) * segs + ch) * g.stage_cap;
  const int mis = static_cast<int>((reinterpret_cast<uintptr_t>(src_row_start) / sizeof(In)) % V);
  return base + mis;  // stage_cap is a multiple of V and the stage buffer is 16-byte aligned
}

/// Input address of (frame-row q, source column sc, channel plane ch) of sample data `x`.
template <typename In>
DALI_HOST_DEV inline const In *InputAt(const In *x, const TileGeometry &g, int64_t q, int sc,
                                       int ch) {
  const int64_t f = q / g.H, r = q - f * g.H;
  if (g.in_planar)
    return x + f * g.FrameElems() + (int64_t(ch) * g.H + r) * g.W + sc;
  return x + f * g.FrameElems() + (r * g.W + sc) * g.C;
}

/// Phase 1: stage the sources of one tile.
template <typename Out, typename In>
DALI_HOST_DEV inline void StageTile(const SampleDesc<Out, In> &s, const TileGeometry &g,
                                    int64_t tile, In *stage, int thread, int nthreads) {
  const TileSpan t = TileAt(g, tile);
  const int segs = g.in_planar ? g.C : 1;
  const int per_col = g.in_planar ? 1 : g.C;
  for (int64_t q = t.q0; q < t.q1; q++) {
    const int k = static_cast<int>(q - t.q0);
    const int r = static_cast<int>(q % g.H);
    const ColumnNeeds n = NeedsOfRow(s.p, r, t.c0, t.c1);
    const int ranges[3][3] = {{0, n.self_a0, n.self_a1}, {0, n.self_b0, n.self_b1},
                              {1, n.other_a0, n.other_a1}};
    for (const auto &rg : ranges) {
      if (rg[1] >= rg[2]) continue;
      const In *x = rg[0] ? s.partner : s.own;
      const int flip = rg[0] ? s.flip_partner : s.flip_own;
      int tile_s0, tile_s1, s0, s1;
      SourceColumns(g.W, flip, t.c0, t.c1, &tile_s0, &tile_s1);  // the tile's source columns
      SourceColumns(g.W, flip, rg[1], rg[2], &s0, &s1);          // this range's
      for (int ch = 0; ch < segs; ch++) {
        const In *row = InputAt(x, g, q, tile_s0, ch);
        In *seg = StageSegment(stage, g, rg[0], k, ch, row);
        CopyRange(seg + int64_t(s0 - tile_s0) * per_col, row + int64_t(s0 - tile_s0) * per_col,
                  int64_t(s1 - s0) * per_col, thread, nthreads);
      }
    }
  }
}

/// Reads one staged source of a tile row: the segments of frame f, image row r, whose tile
/// column range starts at source column `s0` (see StageSegment).
template <typename In>
struct StagedRow {
  const In *x;     // the source sample in device memory (only addresses are taken)
  In *stage;
  int which, k;    // 0: the sample, 1: the partner; tile row
  int64_t f;
  int r, s0, flip;

  DALI_HOST_DEV In At(const TileGeometry &g, int c, int ch) const {
    const int sc = flip ? g.W - 1 - c : c;
    if (g.in_planar) {
      const In *row = x + f * g.FrameElems() + (int64_t(ch) * g.H + r) * g.W + s0;
      return StageSegment(stage, g, which, k, ch, row)[sc - s0];
    }
    const In *row = x + f * g.FrameElems() + (int64_t(r) * g.W + s0) * g.C;
    return StageSegment(stage, g, which, k, 0, row)[(sc - s0) * g.C + ch];
  }
};

/// The partner's value at output (frame f, row r, column c, channel ch) inside the box of a
/// resized-partner sample (ResizeMix), read from device memory (a gather, not staged):
/// nearest, or bilinear rounded to the input type (spec 10).
template <typename Out, typename In>
DALI_HOST_DEV inline In ResizedPartnerAt(const SampleDesc<Out, In> &s, const TileGeometry &g,
                                         int64_t f, int r, int c, int ch) {
  const In *frame = s.partner + f * g.FrameElems();
  auto at = [&](int sr, int sc) -> const In & {
    return g.in_planar ? frame[(int64_t(ch) * g.H + sr) * g.W + sc]
                       : frame[(int64_t(sr) * g.W + sc) * g.C + ch];
  };
  if (s.p.kind == kMaskResizedLinear)
    return ConvertOut<In>(ResizedLinear(s.p, g.H, g.W, r, c, s.flip_partner,
                                        [&](int sr, int sc) { return LoadIn(at(sr, sc)); }));
  int sr, sc;
  ResizedSource(s.p, g.H, g.W, r, c, s.flip_partner, &sr, &sc);
  return at(sr, sc);
}

/// The output element at output column c, channel ch of a tile row, from the staged sources
/// (a resized partner from device memory).
template <typename Out, typename In>
DALI_HOST_DEV inline Out OutputValue(const SampleDesc<Out, In> &s, const TileGeometry &g,
                                     const StagedRow<In> &self, const StagedRow<In> &other, int c,
                                     int ch, float m, const float *norm) {
  In a{}, b{};
  if (m != 0.0f) a = self.At(g, c, ch);
  if (m != 1.0f)
    b = IsResized(s.p.kind) ? ResizedPartnerAt(s, g, self.f, self.r, c, ch)
                                 : other.At(g, c, ch);
  if (g.normalize) return MixElement<true, Out, In>(m, a, b, norm[ch], norm[g.C + ch]);
  return MixElement<false, Out, In>(m, a, b, 0.0f, 1.0f);
}

/// Chunks of V output elements per output segment of a tile, at most (a segment is a plane row
/// of the tile's columns for CHW output, or the run of columns x channels for HWC output).
DALI_HOST_DEV inline int ChunksPerSegment(int seg_len, int V) {
  return (seg_len + 2 * V - 2) / V;  // any start alignment
}

/// Phase 2: compute and write the output of one tile (and the mask rows of frame 0). The
/// block's threads share the 16-byte-aligned output chunks of all rows and segments of the tile.
template <typename Out, typename In>
DALI_HOST_DEV inline void ComputeTile(const SampleDesc<Out, In> &s, const TileGeometry &g,
                                      int64_t tile, In *stage, const float *tables,
                                      const float *norm, int thread, int nthreads) {
  constexpr int V = 16 / sizeof(Out);
  const TileSpan t = TileAt(g, tile);
  const int cols = t.c1 - t.c0;
  const int segs = g.out_planar ? g.C : 1;
  const int seg_len = g.out_planar ? cols : cols * g.C;
  const int per_seg = ChunksPerSegment(seg_len, V);
  const int64_t items = (t.q1 - t.q0) * segs * per_seg;
  int self_s0, other_s0, unused;
  SourceColumns(g.W, s.flip_own, t.c0, t.c1, &self_s0, &unused);
  SourceColumns(g.W, s.flip_partner, t.c0, t.c1, &other_s0, &unused);
  for (int64_t item = thread; item < items; item += nthreads) {
    // one division per chunk of V elements: (tile row, segment, chunk)
    const int64_t row_seg = item / per_seg;
    const int ck = static_cast<int>(item - row_seg * per_seg);
    const int k = static_cast<int>(row_seg / segs);
    const int sg = static_cast<int>(row_seg - int64_t(k) * segs);
    const int64_t q = t.q0 + k;
    const int64_t f = q / g.H;
    const int r = static_cast<int>(q - f * g.H);
    Out *seg = g.out_planar
        ? s.out + f * g.FrameElems() + (int64_t(sg) * g.H + r) * g.W + t.c0
        : s.out + f * g.FrameElems() + (int64_t(r) * g.W + t.c0) * g.C;
    const int mis = static_cast<int>((reinterpret_cast<uintptr_t>(seg) / sizeof(Out)) % V);
    const int e0 = ck * V - mis;  // segment element of the chunk's first lane
    if (e0 >= seg_len || e0 + V <= 0) continue;  // past this segment's chunks
    const StagedRow<In> self{s.own, stage, 0, k, f, r, self_s0, s.flip_own};
    const StagedRow<In> other{s.partner, stage, 1, k, f, r, other_s0, s.flip_partner};
    const int e = e0 < 0 ? 0 : e0;
    int c = g.out_planar ? e : e / g.C;  // column and channel of the first element
    int ch = g.out_planar ? sg : e - c * g.C;
    const bool full = e0 >= 0 && e0 + V <= seg_len;
    alignas(16) Out lane[V];  // unrolled: compile-time indices keep it in registers
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int j = 0; j < V; j++) {
      if (e0 + j < 0 || e0 + j >= seg_len) continue;
      const int col = t.c0 + c;
      const Out v = OutputValue<Out, In>(s, g, self, other, col, ch,
                                         OldMaskAt(s.p, tables, g.H, g.W, r, col), norm);
      if (full)
        lane[j] = v;
      else
        seg[e0 + j] = v;
      if (g.out_planar) {
        c++;
      } else if (++ch == g.C) {
        ch = 0;
        c++;
      }
    }
    if (full) {
      Vec16 w;
      memcpy(&w, lane, 16);
      Store16(seg + e0, w);
    }
  }
  if (s.mask) {
    for (int64_t q = t.q0; q < t.q1 && q < g.H; q++) {
      const int r = static_cast<int>(q);
      for (int c = t.c0 + thread; c < t.c1; c += nthreads)
        s.mask[int64_t(r) * g.W + c] = OldMaskAt(s.p, tables, g.H, g.W, r, c);
    }
  }
}

/// The target (and params) row of sample `sample`, written by the sample's first block.
template <typename Out, typename In>
DALI_HOST_DEV inline void WriteTargets(const SampleDesc<Out, In> &s, int sample,
                                       const TileGeometry &g, const float *soft,
                                       const float *param_rows, int thread, int nthreads) {
  const int K = g.K;
  if (s.t.soft_row >= 0) {
    const float *src = soft + int64_t(s.t.soft_row) * K;
    for (int k = thread; k < K; k += nthreads) s.target[k] = src[k];
  } else {
    for (int k = thread; k < K; k += nthreads)
      s.target[k] = k == s.t.ya ? s.t.va : k == s.t.yb ? s.t.vb : s.t.fill;
  }
  for (int k = thread; s.params && k < 4; k += nthreads) s.params[k] = param_rows[4 * sample + k];
}

// ---- the launch, planned on the host (mix.cu and the harness call the same functions) --------

constexpr int kOldBlockThreads = 256;
constexpr int64_t kMaxStageBytes = 48 << 10;  // shared memory a block may use without opting in

struct TilePlanLimits {
  int64_t stage_bytes = 24 << 10;  // shared memory per block for the staged sources
  int64_t tile_elems = 4096;       // output elements per tile, roughly
  int64_t block_elems = 32768;     // output elements per block, roughly
};

/// Elements of one staged segment: the tile's columns plus 16 bytes of slack for the shift that
/// keeps the source's alignment, rounded to whole 16-byte vectors.
inline int StageCap(int cols, int per_col, int in_bytes) {
  const int64_t v = 16 / in_bytes;
  return static_cast<int>((int64_t(cols) * per_col + v + v - 1) / v * v);
}

/// Tiles for a batch of samples of `frames` x H x W x C elements of `in_bytes` each. The caller
/// checks StageBytes() against kMaxStageBytes (only very many planar channels exceed it).
inline TileGeometry PlanTiles(int64_t frames, int H, int W, int C, bool in_planar,
                              bool out_planar, int in_bytes, bool normalize, int K,
                              const TilePlanLimits &lim = {}) {
  TileGeometry g;
  g.frames = frames;
  g.H = H;
  g.W = W;
  g.C = C;
  g.in_planar = in_planar;
  g.out_planar = out_planar;
  g.normalize = normalize;
  g.K = K;
  const int segs = in_planar ? C : 1, per_col = in_planar ? 1 : C;
  auto bytes = [&](int64_t rows, int cols) {
    return 2 * rows * segs * StageCap(cols, per_col, in_bytes) * int64_t(in_bytes);
  };
  int cols = W;  // whole rows, halved until one row of both sources fits
  while (cols > 1 && bytes(1, cols) > lim.stage_bytes) cols = (cols + 1) / 2;
  int64_t rows = std::max<int64_t>(1, lim.tile_elems / (int64_t(cols) * C));
  rows = std::min<int64_t>(rows, std::max<int64_t>(1, lim.stage_bytes / bytes(1, cols)));
  rows = std::min<int64_t>(rows, frames * H);
  g.tile_rows = static_cast<int>(rows);
  g.tile_cols = cols;
  g.col_tiles = (W + cols - 1) / cols;
  g.tiles = (frames * H + rows - 1) / rows * g.col_tiles;
  g.tiles_per_block = static_cast<int>(
      std::max<int64_t>(1, lim.block_elems / (rows * int64_t(cols) * C)));
  g.stage_cap = StageCap(cols, per_col, in_bytes);
  return g;
}

inline int64_t StageBytes(const TileGeometry &g, int in_bytes) {
  return g.StageElems() * in_bytes;
}

/// Blocks along x per sample.
inline int64_t GridX(const TileGeometry &g) {
  return (g.tiles + g.tiles_per_block - 1) / g.tiles_per_block;
}

/// Everything the kernel reads besides the images, by name (so that nothing can be passed in
/// the wrong order): on the GPU, device pointers into one upload; in the harness, host ones.
template <typename Out, typename In>
struct OldKernelArgs {
  const SampleDesc<Out, In> *samples;
  const float *tables;      // GMix factors, FMix masks (SampleParams::mask_offset)
  const float *norm;        // mean[C], inv_std[C] (TileGeometry::normalize)
  const float *soft;        // soft target rows (TargetSpec::soft_row)
  const float *param_rows;  // 4 per sample (output_params)
  TileGeometry g;
};

/// Tiles [t0, t1) of block `block_x` of a sample.
DALI_HOST_DEV inline void BlockTiles(const TileGeometry &g, int64_t block_x, int64_t *t0,
                                     int64_t *t1) {
  *t0 = block_x * g.tiles_per_block;
  *t1 = *t0 + g.tiles_per_block < g.tiles ? *t0 + g.tiles_per_block : g.tiles;
}

/// The per-sample descriptors of a launch: partner, mirror flags and output rows by sample.

template <typename Out, typename In>
__global__ void __launch_bounds__(kOldBlockThreads) OldMixKernel(const OldKernelArgs<Out, In> args) {
  extern __shared__ __align__(16) unsigned char smem[];
  In *stage = reinterpret_cast<In *>(smem);
  const SampleDesc<Out, In> s = args.samples[blockIdx.y];
  int64_t t0, t1;
  BlockTiles(args.g, blockIdx.x, &t0, &t1);
  for (int64_t t = t0; t < t1; t++) {
    StageTile(s, args.g, t, stage, threadIdx.x, blockDim.x);
    __syncthreads();
    ComputeTile(s, args.g, t, stage, args.tables, args.norm, threadIdx.x, blockDim.x);
    __syncthreads();
  }
  if (blockIdx.x == 0)
    WriteTargets(s, blockIdx.y, args.g, args.soft, args.param_rows, threadIdx.x, blockDim.x);
}

}  // namespace old
}  // namespace msda

#endif  // DALI_MSDA_BENCHMARKS_OLD_KERNEL_CUH_
