// Host harness for the CUDA kernel's work (dali_msda/csrc/mix/kernel.h): plans the launch with
// the functions mix.cu uses (PlanLaunch, BuildDescs, KernelArgs), then runs MixThread for every
// block and thread of it on the CPU (the threads are independent: no shared memory, no barrier).
// Every vector access's alignment is checked (kernel.h Touch: a GPU would fault), and every
// access is recorded with its call site, so that what a GPU would move can be counted: for each
// warp-wide access (the accesses of 32 consecutive threads at the same site, in the same unit
// iteration, in the same order) the distinct 32-byte sectors it touches. Built and called
// through ctypes by tests/test_kernel_emulation.py.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <stdexcept>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "dali/core/random/philox.h"
#include "mix/host_masks.h"
#include "mix/kernel.h"
#include "mix/params.h"
#include "mix/philox_words.h"

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
  int sms, blocks_per_sm, threads;  // the launch: sms x blocks_per_sm blocks at most
  const float *fmix_noise;           // FMix: n x H x (W / 2 + 1) x 2, or null
  const unsigned char *fmix_round_up;  // FMix: n coins, or null
  float decay_power;
  int resize_linear;  // ResizeMix: bilinear
  int exact_box;      // CutMix / HMix: box="exact"
  int64_t *plan;      // out (may be null): vec_c, unit_px, groups, units, blocks, mask_vec
  int64_t *traffic;   // out (may be null): see Traffic
  const void *seg;    // label maps (n x H x W of seg_bytes each), or null (spec 11)
  void *seg_out;
  int seg_bytes;
  int force_general;  // 1: never a plain instance (launch.h PlainLaunch)
  const int *methods;  // per sample (the op's per-sample `method` lists), or null: `method`
  int tables_shift;    // the GMix tables start this many floats (0-3) past 16-byte alignment
};

/// What the launch would move, counted per access kind (access.h AccessKind: image loads, image
/// stores, other loads, other stores, descriptor fields).
struct Traffic : msda::AccessRecorder {
  struct Rec {
    int64_t iter;
    int site, occ, kind;
    uint64_t sector;
    bool operator<(const Rec &o) const {
      return std::tie(iter, site, occ, sector, kind) <
             std::tie(o.iter, o.site, o.occ, o.sector, o.kind);
    }
    bool operator==(const Rec &o) const {
      return iter == o.iter && site == o.site && occ == o.occ && sector == o.sector;
    }
  };
  int64_t iter = 0;
  std::unordered_map<int, int> occ;  // per site: accesses so far in this iteration
  std::vector<Rec> warp;             // the current warp's accesses
  int64_t warp_sectors[5] = {};      // sum over warp accesses of the distinct sectors touched
  int64_t requested[5] = {};         // bytes the threads asked for
  int64_t warp_accesses[5] = {};     // warp-wide access instructions
  std::unordered_set<uint64_t> launch_sectors[2];  // distinct image sectors in the whole launch

  void Thread() {
    iter = 0;
    occ.clear();
  }
  void Iteration(int64_t it) override {
    iter = it;
    occ.clear();
  }
  void Access(int site, int kind, const void *p, int bytes) override {
    const int o = occ[site]++;
    const uint64_t a = reinterpret_cast<uintptr_t>(p);
    for (uint64_t s = a / 32; s <= (a + bytes - 1) / 32; s++) {
      warp.push_back({iter, site, o, kind, s});
      if (kind < 2) launch_sectors[kind].insert(s);
    }
    requested[kind] += bytes;
  }
  void EndWarp() {
    std::sort(warp.begin(), warp.end());
    for (size_t k = 0; k < warp.size(); k++) {
      const Rec &r = warp[k];
      if (k == 0 || !(r == warp[k - 1])) warp_sectors[r.kind]++;
      if (k == 0 || r.iter != warp[k - 1].iter || r.site != warp[k - 1].site ||
          r.occ != warp[k - 1].occ)
        warp_accesses[r.kind]++;
    }
    warp.clear();
  }
  /// out[0..3] sector bytes per kind, [4..7] requested bytes, [8..11] warp accesses, [12..13]
  /// distinct image sector bytes over the launch (loads, stores), [14..15] descriptor loads'
  /// sector bytes and warp accesses.
  void Write(int64_t *out) const {
    for (int k = 0; k < 4; k++) {
      out[k] = 32 * warp_sectors[k];
      out[4 + k] = requested[k];
      out[8 + k] = warp_accesses[k];
    }
    out[12] = 32 * int64_t(launch_sectors[0].size());
    out[13] = 32 * int64_t(launch_sectors[1].size());
    out[14] = 32 * warp_sectors[msda::kDescLoad];
    out[15] = warp_accesses[msda::kDescLoad];
  }
};

/// Allocates 256-byte aligned, as DALI's device buffers are, so that the sectors an access
/// touches do not depend on where the host heap put a buffer.
template <typename T>
struct Aligned256 {
  using value_type = T;
  Aligned256() = default;
  template <typename U>
  Aligned256(const Aligned256<U> &) {}  // NOLINT(runtime/explicit)
  T *allocate(size_t k) {
    return static_cast<T *>(::operator new(k * sizeof(T), std::align_val_t(256)));
  }
  void deallocate(T *p, size_t) { ::operator delete(p, std::align_val_t(256)); }
  bool operator==(const Aligned256 &) const { return true; }
};
template <typename T>
using DeviceVector = std::vector<T, Aligned256<T>>;

/// n samples of `bytes` each, copied from `src` (contiguous) each into a stretch of its own of
/// one allocation, with 256 bytes or more between them that no bounds range holds, each at its
/// original address's offset modulo 256 (so the launch sees the alignment it would have seen);
/// their ranges are added to `bounds`. CopyBack writes them to `dst` (contiguous).
struct Apart {
  std::vector<uint8_t> mem;
  std::vector<char *> at;
  size_t bytes = 0;
  Apart(const void *src, int n, size_t sample_bytes, msda::AccessBounds &bounds)
      : at(n, nullptr), bytes(sample_bytes) {
    if (!src) return;
    const size_t stride = (bytes + 255) / 256 * 256 + 512;
    mem.resize(n * stride + 256);
    char *base = reinterpret_cast<char *>(mem.data());
    base += -reinterpret_cast<uintptr_t>(base) % 256;
    for (int i = 0; i < n; i++) {
      const char *from = static_cast<const char *>(src) + i * bytes;
      at[i] = base + i * stride + reinterpret_cast<uintptr_t>(from) % 256;
      std::memcpy(at[i], from, bytes);
      bounds.Add(at[i], bytes);
    }
  }
  template <typename T>
  T *Sample(int i) const { return reinterpret_cast<T *>(at[i]); }
  void CopyBack(void *dst) const {
    for (size_t i = 0; dst && i < at.size(); i++)
      std::memcpy(static_cast<char *>(dst) + i * bytes, at[i], bytes);
  }
};

template <typename Out, typename In>
int Emulate(const Inputs &a) {
  using namespace msda;  // NOLINT
  const int n = a.n, H = a.H, W = a.W, C = a.C, K = a.K;
  // host planning, as the operator's DrawBatch (plan.h) does it for given draws
  std::vector<SampleParams> p(n);
  std::vector<TargetSpec> t(n);
  const int64_t stride = TableSize(Method::kGMix, H, W);  // a multiple of 4 floats
  const int64_t bits_stride = BitsSize(Method::kFMix, H, W);
  // mix.cu uploads the tables behind the sample descriptors in one buffer (DALI's
  // ToContiguousGPU aligns each part to its element type only): only 4-byte alignment is
  // promised (16 in practice, the descriptors being 144 bytes each), hence tables_shift
  DeviceVector<float> table_mem(n * stride + 4), soft(a.soft_labels ? int64_t(n) * K : 0);
  float *const tables = table_mem.data() + a.tables_shift;
  DeviceVector<uint8_t> bits(n * bits_stride);
  DeviceVector<float> param_rows(4 * n), norm;
  for (int i = 0; i < n; i++) {
    Draw d{a.apply[i] != 0, a.lam[i], a.cy[i], a.cx[i],
           a.fmix_round_up ? a.fmix_round_up[i] != 0 : false};
    d.scale = d.lam;  // ResizeMix: the given lam is its scale tau
    double w;
    const MaskOptions options{a.hmix_ratio, a.correct_lam != 0, a.resize_linear != 0,
                              a.exact_box != 0};
    const Method method = static_cast<Method>(a.methods ? a.methods[i] : a.method);
    p[i] = PlanSample(method, d, i, n, options, H, W, tables + i * stride, i * stride,
                      i * bits_stride, &w);
    if (p[i].kind == kMaskBits) {  // the FMix mask, as the op's MakeFMixMasks makes it
      const int64_t size = FMixNoiseSize(H, W);
      std::vector<double> noise(a.fmix_noise + i * size, a.fmix_noise + (i + 1) * size);
      FMixMask(noise.data(), H, W, a.decay_power, FMixOnes(d.lam, d.round_up, H, W),
               bits.data() + i * bits_stride);
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

  // per-sample pointers, as the views give them to mix.cu; each sample's image, output, mask
  // and maps apart (Apart), so that an access past a sample's end is caught, not served by the
  // next sample's data
  const int64_t volume = a.frames * H * W * C;
  AccessBounds bounds;
  const Apart in_mem(a.images, n, volume * sizeof(In), bounds);
  const Apart out_mem(a.out, n, volume * sizeof(Out), bounds);
  const Apart mask_mem(a.masks, n, int64_t(H) * W * sizeof(float), bounds);
  const Apart seg_mem(a.seg, n, int64_t(H) * W * a.seg_bytes, bounds);
  const Apart seg_out_mem(a.seg ? a.seg_out : nullptr, n, int64_t(H) * W * a.seg_bytes, bounds);
  std::vector<Out *> outs(n);
  std::vector<const In *> ins(n);
  std::vector<float *> masks(n), targets(n), params(n);
  for (int i = 0; i < n; i++) {
    outs[i] = out_mem.Sample<Out>(i);
    ins[i] = in_mem.Sample<const In>(i);
    masks[i] = a.masks ? mask_mem.Sample<float>(i) : nullptr;
    targets[i] = a.targets + int64_t(i) * K;
    params[i] = a.params ? a.params + 4 * i : nullptr;
  }
  const BatchShape shape =
      MakeBatchShape(n, a.frames, H, W, C, a.in_planar, a.out_planar, a.mean_std != nullptr, K);
  const bool aligned = VectorAligned(shape, ins.data(), outs.data(), n);
  const bool mask_aligned = !a.masks || AllAligned(masks.data(), n);
  LaunchGeometry g = PlanLaunch<In>(shape, aligned, mask_aligned, a.sms, a.blocks_per_sm,
                                    a.threads);
  g.seg_bytes = a.seg ? a.seg_bytes : 0;
  g.plain = a.force_general ? kGeneral
                            : PlainLaunch<Out, In>(g, p.data(), a.masks != nullptr,
                                                   a.mean_std ? norm.data() : nullptr);
  if (a.plan) {
    const int64_t plan[7] = {g.vec_c, g.unit_px, g.groups, g.units, g.blocks, g.mask_vec,
                             g.plain};
    std::memcpy(a.plan, plan, sizeof(plan));
  }
  std::vector<const void *> seg_in(n);
  std::vector<void *> seg_out(n);
  for (int i = 0; i < n && a.seg; i++) {
    seg_in[i] = seg_mem.Sample<const char>(i);
    seg_out[i] = seg_out_mem.Sample<char>(i);
  }
  DeviceVector<SampleDesc<Out, In>> descs(n);
  BuildDescs<Out, In>(n, outs.data(), ins.data(), a.masks ? masks.data() : nullptr,
                      targets.data(), a.params ? params.data() : nullptr, p.data(), t.data(),
                      a.mirror, descs.data(), a.seg ? seg_in.data() : nullptr,
                      a.seg ? seg_out.data() : nullptr);
  const KernelArgs<Out, In> args{.samples = descs.data(), .tables = tables,
                                 .bits = bits.data(), .norm = norm.data(), .soft = soft.data(),
                                 .param_rows = param_rows.data(), .g = g};

  // the rest of what the launch may touch, each buffer whole
  bounds.Add(a.targets, int64_t(n) * K * sizeof(float));
  bounds.Add(a.params, 4 * n * sizeof(float));
  bounds.Add(descs.data(), descs.size() * sizeof(descs[0]));
  bounds.Add(tables, n * stride * sizeof(float));
  bounds.Add(bits.data(), bits.size());
  bounds.Add(norm.data(), norm.size() * sizeof(float));
  bounds.Add(soft.data(), soft.size() * sizeof(float));
  bounds.Add(param_rows.data(), param_rows.size() * sizeof(float));
  bounds.Seal();

  // the launch: g.blocks blocks of g.threads threads, warp by warp
  MisalignedAccesses() = 0;
  Bounds() = &bounds;
  Traffic traffic;
  Recorder() = a.traffic ? &traffic : nullptr;
  WithInstance<Out, In>(g, [&](auto c, auto plain) {
    for (int b = 0; b < g.blocks; b++) {
      for (int th = 0; th < g.threads; th++) {
        traffic.Thread();
        MixThread<decltype(c)::value, decltype(plain)::value>(args, b, th);
        if (th % 32 == 31 || th == g.threads - 1) traffic.EndWarp();
      }
    }
  });
  Recorder() = nullptr;
  Bounds() = nullptr;
  out_mem.CopyBack(a.out);
  mask_mem.CopyBack(a.masks);
  seg_out_mem.CopyBack(a.seg ? a.seg_out : nullptr);
  if (a.traffic) traffic.Write(a.traffic);
  return MisalignedAccesses() ? -3 : bounds.outside ? -4 : 0;
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
/// -1 for an unknown type, -3 when a vector access was misaligned (it would fault on a GPU), -4
/// when an access fell outside the memory of its buffer (for images, outputs, masks and maps:
/// outside its own sample's).
extern "C" int msda_emulate_kernel(int in_type, int out_type, const Inputs *a) {
  switch (out_type) {
    case 0: return DispatchIn<uint8_t>(in_type, *a);
    case 1: return DispatchIn<dali::float16>(in_type, *a);
    case 2: return DispatchIn<float>(in_type, *a);
    default: return -1;
  }
}

/// The launch PlanLaunch gives (for tests of the planning): out = {vec_c, unit_px, groups, units,
/// blocks, mask_vec, units_per_block}.
extern "C" void msda_plan_launch(int n, int64_t frames, int H, int W, int C, int in_bytes,
                                 int aligned, int sms, int blocks_per_sm, int threads,
                                 int64_t *out) {
  const msda::BatchShape shape = msda::MakeBatchShape(n, frames, H, W, C, false, true, true, 1);
  auto plan = [&](auto in) {
    return msda::PlanLaunch<decltype(in)>(shape, aligned, aligned, sms, blocks_per_sm, threads);
  };
  const msda::LaunchGeometry g = in_bytes == 1 ? plan(uint8_t{})
                                 : in_bytes == 2 ? plan(dali::float16{}) : plan(float{});
  const int64_t vals[7] = {g.vec_c, g.unit_px, g.groups, g.units, g.blocks, g.mask_vec,
                           g.units_per_block};
  std::memcpy(out, vals, sizeof(vals));
}

/// Element offsets the kernel computes for huge samples (no memory: addresses from a null
/// base): out = {InputAt, OutputAt offsets of (f, r, c, ch), then the unit position of unit u:
/// pair, f, r, grp; then that position advanced by `step` units}.
extern "C" void msda_offsets(int64_t frames, int H, int W, int C, int in_planar, int out_planar,
                             int64_t f, int r, int c, int ch, int n, int64_t u, int64_t step,
                             int64_t *out) {
  msda::LaunchGeometry g(
      msda::MakeBatchShape(n, frames, H, W, C, in_planar, out_planar, false, 1));
  g.groups = W;  // the per-pixel fallback's units
  const uint8_t *base = nullptr;
  out[0] = msda::InputAt(base, g, f, r, c, ch) - base;
  out[1] = msda::OutputAt(const_cast<uint8_t *>(base), g, f, r, c, ch) - base;
  msda::UnitPos p = msda::UnitAt(g, u);
  out[2] = p.pair;
  out[3] = p.f;
  out[4] = p.r;
  out[5] = p.grp;
  msda::Advance(g, msda::UnitAt(g, step), p);
  out[6] = p.pair;
  out[7] = p.f;
  out[8] = p.r;
  out[9] = p.grp;
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

/// `count` words of msda::PhiloxWords (FMix's noise words) into `ours` and of the
/// dali::Philox4x32_10 it is made from, in state (key, counter hi:lo, phase), into `dali`.
extern "C" void msda_philox_words(uint64_t key, uint64_t hi, uint64_t lo, int phase,
                                  int64_t count, uint32_t *ours, uint32_t *dali) {
  dali::Philox4x32_10 rng;
  rng.init(key, hi, lo, phase);
  msda::PhiloxWords words(rng);
  for (int64_t k = 0; k < count; k++) ours[k] = words();
  for (int64_t k = 0; k < count; k++) dali[k] = rng();
}

/// One FMix mask made as the op makes it (host_masks.h MakeFMixMasks: a job whose stream is a
/// dali::Philox4x32_10 in state (key, counter hi:lo, phase)) into `op`, and from normals drawn
/// with a copy of that generator here into `dali` (MaskBit's H x W bits each).
extern "C" void msda_fmix_job_mask(uint64_t key, uint64_t hi, uint64_t lo, int phase, int H,
                                   int W, int64_t ones, uint8_t *op, uint8_t *dali) {
  dali::Philox4x32_10 rng;
  rng.init(key, hi, lo, phase);
  msda::BatchPlan plan;
  const int64_t bytes = (int64_t(H) * W + 7) / 8;
  plan.bits.assign(bytes, 0);
  plan.fmix_jobs.push_back({0, 0, rng, ones, 0});
  msda::MakeFMixMasks(
      plan, H, W, 3.0, [](int) -> const float * { return nullptr; },
      [](size_t jobs, int64_t, const auto &make) {
        for (size_t k = 0; k < jobs; k++) make(k);
      });
  std::copy(plan.bits.begin(), plan.bits.end(), op);
  std::vector<double> noise(msda::FMixNoiseSize(H, W));
  msda::StandardNormals(rng, int64_t(noise.size()), noise.data());
  msda::FMixMask(noise.data(), H, W, 3.0, ones, dali);
}
