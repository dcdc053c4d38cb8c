// Host harness for the CUDA kernel's work (dali_msda/csrc/mix/kernel.h): plans the launch with
// the functions mix.cu uses (PlanTiles, BuildDescs, KernelArgs), then runs every block of it on
// the CPU, each phase for every thread before the next phase (as __syncthreads orders them on the
// GPU). The staging buffer starts filled with 0xff bytes, so a value read from shared memory that
// no thread staged shows up in the output; a misaligned 16-byte access is counted and reported
// (kernel.h CheckAligned). Built
// and called through ctypes by tests/test_kernel_emulation.py.

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "mix/kernel.h"
#include "mix/params.h"

namespace {

struct Inputs {
  int method, n;
  int64_t frames;
  int H, W, C, in_planar, out_planar;
  const void *images;
  void *out;
  float *masks, *targets, *params;  // masks and params may be null
  const float *lam;
  const int *cy, *cx;
  const unsigned char *apply;
  const int *mirror;         // may be null
  const int *class_ids;      // class-index labels, or null
  const float *soft_labels;  // n x K soft labels, or null
  int K;
  float eps, hmix_ratio;
  int correct_lam;
  const float *mean_std;  // 2 x C (mean, std), or null: no normalisation
  int64_t stage_bytes, tile_elems, block_elems;
  int nthreads;
  const float *fmix_noise;           // FMix: n x H x (W / 2 + 1) x 2, or null
  const unsigned char *fmix_round_up;  // FMix: n coins, or null
  float decay_power;
  int resize_linear;  // ResizeMix: bilinear
};

template <typename Out, typename In>
int Emulate(const Inputs &a) {
  using namespace msda;  // NOLINT
  const int n = a.n, H = a.H, W = a.W, C = a.C, K = a.K;
  // host planning, as the operator's DrawParams does it for given draws
  std::vector<SampleParams> p(n);
  std::vector<TargetSpec> t(n);
  const int64_t stride = int64_t(H) + W + int64_t(H) * W;  // room for any method's table
  std::vector<float> tables(n * stride), soft(a.soft_labels ? int64_t(n) * K : 0);
  std::vector<float> param_rows(4 * n), norm;
  for (int i = 0; i < n; i++) {
    Draw d{a.apply[i] != 0, a.lam[i], a.cy[i], a.cx[i],
           a.fmix_round_up ? a.fmix_round_up[i] != 0 : false};
    double w;
    p[i] = PlanSample(static_cast<Method>(a.method), d, i, n, a.hmix_ratio, a.correct_lam,
                      a.resize_linear, H, W, tables.data() + i * stride, i * stride, &w);
    if (p[i].kind == kMaskTable) {  // the FMix mask, as the operator's BuildFMixMasks makes it
      const int64_t size = FMixNoiseSize(H, W);
      std::vector<double> noise(a.fmix_noise + i * size, a.fmix_noise + (i + 1) * size);
      FMixMask(noise.data(), H, W, a.decay_power, FMixOnes(d.lam, d.round_up, H, W),
               tables.data() + i * stride);
    }
    const int j = n - 1 - i;
    if (a.soft_labels) {
      SoftTarget(w, a.soft_labels + int64_t(i) * K, a.soft_labels + int64_t(j) * K, K, a.eps,
                 soft.data() + int64_t(i) * K);
      t[i].soft_row = i;
    } else {
      t[i] = OneHotTarget(w, a.class_ids[i], a.class_ids[j], a.eps, K);
    }
    const float row[4] = {d.apply ? 1.0f : 0.0f, d.lam, float(d.cy), float(d.cx)};
    std::memcpy(&param_rows[4 * i], row, sizeof(row));
  }
  if (a.mean_std) {
    norm.resize(2 * C);
    for (int c = 0; c < C; c++) {
      norm[c] = a.mean_std[c];
      norm[C + c] = 1.0f / a.mean_std[C + c];
    }
  }
  TilePlanLimits lim;
  lim.stage_bytes = a.stage_bytes;
  lim.tile_elems = a.tile_elems;
  lim.block_elems = a.block_elems;
  const TileGeometry g = PlanTiles(a.frames, H, W, C, a.in_planar, a.out_planar, sizeof(In),
                                   a.mean_std != nullptr, K, lim);
  if (StageBytes(g, sizeof(In)) > kMaxStageBytes) return -2;

  // per-sample pointers, as the views give them to mix.cu
  const int64_t volume = a.frames * H * W * C;
  std::vector<Out *> outs(n);
  std::vector<const In *> ins(n);
  std::vector<float *> masks(n), targets(n), params(n);
  for (int i = 0; i < n; i++) {
    outs[i] = static_cast<Out *>(a.out) + i * volume;
    ins[i] = static_cast<const In *>(a.images) + i * volume;
    masks[i] = a.masks ? a.masks + int64_t(i) * H * W : nullptr;
    targets[i] = a.targets + int64_t(i) * K;
    params[i] = a.params ? a.params + 4 * i : nullptr;
  }
  std::vector<SampleDesc<Out, In>> descs(n);
  BuildDescs<Out, In>(n, outs.data(), ins.data(), a.masks ? masks.data() : nullptr,
                      targets.data(), a.params ? params.data() : nullptr, p.data(), t.data(),
                      a.mirror, descs.data());
  const KernelArgs<Out, In> args{.samples = descs.data(), .tables = tables.data(),
                                 .norm = norm.data(), .soft = soft.data(),
                                 .param_rows = param_rows.data(), .g = g};

  // the launch: grid (GridX, n), nthreads per block, shared memory of StageBytes
  MisalignedAccesses() = 0;
  const int64_t stage_len = g.StageElems();
  In *stage = static_cast<In *>(std::aligned_alloc(16, (stage_len * sizeof(In) + 15) / 16 * 16));
  for (int sample = 0; sample < n; sample++) {
    const SampleDesc<Out, In> s = args.samples[sample];
    for (int64_t bx = 0; bx < GridX(args.g); bx++) {
      std::memset(static_cast<void *>(stage), 0xff, stage_len * sizeof(In));
      int64_t t0, t1;
      BlockTiles(args.g, bx, &t0, &t1);
      for (int64_t tile = t0; tile < t1; tile++) {
        for (int th = 0; th < a.nthreads; th++) StageTile(s, args.g, tile, stage, th, a.nthreads);
        for (int th = 0; th < a.nthreads; th++)
          ComputeTile(s, args.g, tile, stage, args.tables, args.norm, th, a.nthreads);
      }
      if (bx == 0)
        for (int th = 0; th < a.nthreads; th++)
          WriteTargets(s, sample, args.g, args.soft, args.param_rows, th, a.nthreads);
    }
  }
  std::free(stage);
  return MisalignedAccesses() ? -3 : 0;
}

template <typename Out>
int DispatchIn(int in_type, const Inputs &a) {
  switch (in_type) {
    case 0: return Emulate<Out, uint8_t>(a);
    case 1: return Emulate<Out, dali::float16>(a);
    case 2: return Emulate<Out, float>(a);
    default: return -1;
  }
}

}  // namespace

/// Types: 0 uint8, 1 float16, 2 float32. Images are n contiguous samples; returns 0 on success,
/// -1 for an unknown type, -2 when the planned shared memory exceeds what a block may use, -3
/// when a 16-byte access was misaligned (it would fault on a GPU).
extern "C" int msda_emulate_kernel(int in_type, int out_type, const Inputs *a) {
  switch (out_type) {
    case 0: return DispatchIn<uint8_t>(in_type, *a);
    case 1: return DispatchIn<dali::float16>(in_type, *a);
    case 2: return DispatchIn<float>(in_type, *a);
    default: return -1;
  }
}

/// The launch geometry PlanTiles gives (for tests of the planning's limits):
/// out = {tile_rows, tile_cols, col_tiles, tiles, tiles_per_block, stage_bytes, grid_x}.
extern "C" void msda_plan_tiles(int64_t frames, int H, int W, int C, int in_planar,
                                int out_planar, int in_bytes, int64_t *out) {
  const msda::TileGeometry g = msda::PlanTiles(frames, H, W, C, in_planar, out_planar, in_bytes,
                                               false, 1);
  const int64_t vals[7] = {g.tile_rows, g.tile_cols, g.col_tiles, g.tiles, g.tiles_per_block,
                           msda::StageBytes(g, in_bytes), msda::GridX(g)};
  std::memcpy(out, vals, sizeof(vals));
}

/// ParallelJobs (fmix.h, the GPU op's FMix threads): runs `jobs` jobs on `threads` threads,
/// each adding its index + 1 to counts[k] (so a job run twice or never shows); job `fail` (if
/// >= 0) throws. Returns 1 when the exception came back to the caller, else 0.
extern "C" int msda_parallel_jobs(int64_t jobs, int threads, int64_t fail, int64_t *counts) {
  try {
    msda::ParallelJobs(jobs, threads, [&](int64_t k) {
      counts[k] += k + 1;
      if (k == fail) throw std::runtime_error("job failed");
    });
  } catch (const std::runtime_error &) {
    return 1;
  }
  return 0;
}

/// FMix's normal generator (params.h StandardNormals) driven by std::mt19937 seeded with
/// `seed`, for statistical tests of the generator alone.
extern "C" void msda_standard_normals(uint32_t seed, int64_t count, double *out) {
  std::mt19937 rng(seed);
  msda::StandardNormals(rng, count, out);
}
