// Kernel benchmark: the op's kernel against the memory limit, with nvcc alone (no DALI, no pip).
//
// Built by benchmarks/kernel_bench.sh from the kernel's own headers (dali_msda/csrc/mix; the few
// DALI headers they include are vendored under dali_msda/csrc/third_party/dali) and fmix.cc.
// Launches are planned with the host functions mix.cu uses (PlanSample, PlanLaunch, BuildDescs,
// KernelArgs) and timed with CUDA events: the median of --reps launches, each on the next of a
// rotation of input and output sets that together exceed the L2 several times. Per case:
//   copy            a device-to-device copy moving the same bytes (the ceiling, same run);
//   normalize_only  one uint8 HWC source -> normalised, mirrored float16 CHW (the step of
//                   crop_mirror_normalize that the fused op replaces; fused case only);
//   old             today's kernel (benchmarks/old_kernel.cuh: tiles staged in shared memory);
//   new             the op's kernel (kernel.h MixThread), at the op's launch bounds and at
//                   others (kernel "new_minblocks<N>") to measure the register / occupancy trade;
//                   where a plain instance runs (uint8 inputs; box masks, or box, Gaussian and
//                   bit masks), "new_general" times the general one on the same batch; for the
//                   odd-H case, "new_fallback" the per-pixel fallback the plan once chose for it.
// The outputs of old and new (and of normalize_only against new with no mixing) are compared bit
// for bit on the device before anything is timed; a mismatch fails the run.
//
// Usage: kernel_bench [--out FILE.json] [--reps N] [--batch B]... [--quick] [--check-only]
//                     [--case NAME] [--method NAME] [--mode batch|elem] [--no-variants]
// (--quick: batch mode and batch <= 64 only; the filters run one configuration, e.g. under ncu.)

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "mix/fmix.h"
#include "mix/kernel.h"
#include "mix/params.h"
#include "old_kernel.cuh"

namespace {

#define CHECK(call)                                                                        \
  do {                                                                                     \
    cudaError_t e_ = (call);                                                               \
    if (e_ != cudaSuccess) {                                                               \
      std::fprintf(stderr, "kernel_bench: %s failed at %s:%d: %s\n", #call, __FILE__,     \
                   __LINE__, cudaGetErrorString(e_));                                      \
      std::exit(2);                                                                        \
    }                                                                                      \
  } while (0)

using msda::KernelArgs;
using msda::LaunchGeometry;
using msda::SampleDesc;
using msda::SampleParams;
using msda::TargetSpec;
using half16 = dali::float16;

constexpr int kC = 3, kK = 1000;

// ---- the new kernel, at the op's launch bounds (mix.cu) and at others ------------------------

template <int MinBlocks, int C, int kPlain, typename Out, typename In>
__global__ void __launch_bounds__(msda::kBlockThreads, MinBlocks)
    NewKernel(const KernelArgs<Out, In> args) {
  msda::MixThread<C, kPlain>(args, blockIdx.x, threadIdx.x);
}

// ---- the normalise-only baseline: crop_mirror_normalize's work (uint8 HWC, 3 channels ->
// normalised float16 CHW, mirror), written for the memory limit on its own: a thread takes 8
// pixels (24 bytes, three 8-byte loads), writes 16 bytes to each plane; grid-stride.

struct NormArgs {
  const uint8_t *const *in;
  half16 *const *out;
  const int *mirror;
  float mean[3], inv[3];
  int n, H, W;
};

__global__ void __launch_bounds__(256) NormalizeOnly(const NormArgs a) {
  const int groups = a.W / 8;
  const int64_t units = int64_t(a.n) * a.H * groups;
  for (int64_t u = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; u < units;
       u += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = u / groups;
    const int grp = static_cast<int>(u - row * groups);
    const int s = static_cast<int>(row / a.H), r = static_cast<int>(row - int64_t(s) * a.H);
    const int flip = a.mirror[s];
    const int c0 = grp * 8, s0 = flip ? a.W - c0 - 8 : c0;
    const uint2 *src = reinterpret_cast<const uint2 *>(a.in[s] + (int64_t(r) * a.W + s0) * 3);
    uint32_t w[6];
    for (int k = 0; k < 3; k++) {
      const uint2 v = __ldg(src + k);
      w[2 * k] = v.x;
      w[2 * k + 1] = v.y;
    }
    for (int ch = 0; ch < 3; ch++) {
      uint32_t o[4];
#pragma unroll
      for (int k = 0; k < 8; k += 2) {
        float v[2];
#pragma unroll
        for (int h = 0; h < 2; h++) {
          const int px = flip ? 7 - (k + h) : k + h, idx = px * 3 + ch;
          const float x = static_cast<float>((w[idx >> 2] >> (8 * (idx & 3))) & 0xff);
          v[h] = __fmul_rn(__fsub_rn(x, a.mean[ch]), a.inv[ch]);
        }
        o[k / 2] = uint32_t(__half_as_ushort(__float2half_rn(v[0]))) |
                   (uint32_t(__half_as_ushort(__float2half_rn(v[1]))) << 16);
      }
      *reinterpret_cast<uint4 *>(a.out[s] + (int64_t(ch) * a.H + r) * a.W + c0) =
          make_uint4(o[0], o[1], o[2], o[3]);
    }
  }
}

// ---- bitwise comparison and random data on the device

__global__ void CountDiff(const uint32_t *a, const uint32_t *b, int64_t words,
                          unsigned long long *diff) {
  unsigned long long mine = 0;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < words;
       k += int64_t(gridDim.x) * blockDim.x)
    mine += a[k] != b[k];
  if (mine) atomicAdd(diff, mine);
}

__device__ uint32_t Hash(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return static_cast<uint32_t>(x);
}

template <typename T>
__global__ void FillRandom(T *p, int64_t n, uint64_t seed) {
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < n;
       k += int64_t(gridDim.x) * blockDim.x) {
    const uint32_t h = Hash(seed * 0x9e3779b97f4a7c15ull + k);
    if constexpr (sizeof(T) == 1)
      p[k] = static_cast<T>(h & 0xff);
    else
      p[k] = T(static_cast<float>(h % 25600) / 100.0f);  // 0 .. 255.99, like pixel values
  }
}

// ---- the cases

struct Case {
  const char *name;
  int in_bytes, out_bytes;
  bool out_planar, normalize, mirror;
  int H = 224, W = 224;
};

const Case kCases[] = {
    {"fused_u8_f16_chw", 1, 2, true, true, true},
    {"u8_f32", 1, 4, false, false, false},
    {"f16_f16", 2, 2, false, false, false},
    {"f32_f32_chw", 4, 4, true, false, false},
    // an odd H with W = 8 mod 16: every other uint8 sample starts 8 bytes off 16 (the plan
    // once sent such a batch to the per-pixel fallback: kernel "new_fallback" times that)
    {"fused_u8_f16_chw_oddh", 1, 2, true, true, true, 223, 232},
};

struct MethodSpec {
  const char *name;
  msda::Method method;
  bool bilinear;
};

const MethodSpec kMethods[] = {
    {"mixup", msda::Method::kMixup, false},         {"cutmix", msda::Method::kCutMix, false},
    {"hmix", msda::Method::kHMix, false},           {"gmix", msda::Method::kGMix, false},
    {"fmix", msda::Method::kFMix, false},           {"resizemix", msda::Method::kResizeMix, false},
    {"resizemix_bilinear", msda::Method::kResizeMix, true},
};

struct Row {
  std::string gpu, kase, method, mode, kernel;
  int batch;
  double us, bytes, gbps, copy_gbps;
};

double Median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

/// Median time in microseconds of `reps` calls of launch(rep) (after 3 warm-up calls).
template <typename F>
double TimeMedian(int reps, const F &launch) {
  cudaEvent_t e0, e1;
  CHECK(cudaEventCreate(&e0));
  CHECK(cudaEventCreate(&e1));
  for (int k = 0; k < 3; k++) launch(k);
  CHECK(cudaGetLastError());
  std::vector<float> t;
  for (int k = 0; k < reps; k++) {
    CHECK(cudaEventRecord(e0));
    launch(k + 3);
    CHECK(cudaEventRecord(e1));
    CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, e0, e1));
    t.push_back(ms * 1000.0f);
  }
  CHECK(cudaGetLastError());
  CHECK(cudaEventDestroy(e0));
  CHECK(cudaEventDestroy(e1));
  return Median(t);
}

template <typename T>
T *DeviceCopy(const std::vector<T> &v) {
  T *p = nullptr;
  CHECK(cudaMalloc(&p, std::max<size_t>(1, v.size() * sizeof(T))));
  if (!v.empty()) CHECK(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return p;
}

uint64_t Diff(const void *a, const void *b, size_t bytes) {
  static unsigned long long *d = nullptr;
  if (!d) CHECK(cudaMalloc(&d, sizeof(*d)));
  CHECK(cudaMemset(d, 0, sizeof(*d)));
  CountDiff<<<1024, 256>>>(static_cast<const uint32_t *>(a), static_cast<const uint32_t *>(b),
                           int64_t(bytes / 4), d);
  CHECK(cudaGetLastError());
  unsigned long long h = 0;
  CHECK(cudaMemcpy(&h, d, sizeof(h), cudaMemcpyDeviceToHost));
  return h;
}

struct Options {
  std::string out = "benchmarks/results/kernel_gpu.json";
  int reps = 25;
  std::vector<int> batches{64, 256};
  bool quick = false, check_only = false, variants = true;
  std::string only_case, only_method, only_mode;
};

struct Device {
  std::string name;
  int sms = 0;
  int64_t l2 = 0;
};

/// The plan of one batch for given draws: per-sample params, tables, bits, targets (the host
/// side of the op's DrawBatch, fed with draws from std::mt19937 instead of Philox).
struct Plan {
  std::vector<SampleParams> params, old_params;
  std::vector<TargetSpec> targets;
  std::vector<float> tables, old_tables;  // old: FMix masks as floats, appended
  std::vector<uint8_t> bits;
  std::vector<int> mirror;
  double weight0 = 1.0;  // sample 0's label weight (batch mode shares it)
};

Plan MakePlan(const MethodSpec &m, bool elem, int n, bool mirror, uint32_t seed, int H,
              int W) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u01(0.05f, 0.95f);
  std::uniform_int_distribution<int> cy(0, H - 1), cx(0, W - 1), coin(0, 1), cls(0, kK - 1);
  Plan p;
  p.params.resize(n);
  p.targets.resize(n);
  p.mirror.resize(n);
  msda::Draw batch{true, u01(rng), cy(rng), cx(rng), coin(rng) == 1};
  if (m.method == msda::Method::kResizeMix)
    batch.lam = batch.scale = 0.1f + 0.7f * (u01(rng) - 0.05f) / 0.9f;
  std::vector<int> labels(n);
  for (int i = 0; i < n; i++) labels[i] = cls(rng);
  std::vector<double> noise(msda::FMixNoiseSize(H, W));
  std::normal_distribution<double> normal;
  for (int i = 0; i < n; i++) {
    msda::Draw d = batch;
    if (!elem && i > 0 && m.method != msda::Method::kResizeMix) {
      // batch mode: one mask for the batch, as the op shares it (DrawBatch)
      p.params[i] = p.params[0];
      p.params[i].partner = n - 1 - i;
      p.targets[i] = msda::OneHotTarget(p.weight0, labels[i], labels[n - 1 - i], 0.1, kK);
      p.mirror[i] = mirror ? coin(rng) : 0;
      continue;
    }
    if (elem) {
      d = {true, u01(rng), cy(rng), cx(rng), coin(rng) == 1};
      if (m.method == msda::Method::kResizeMix)
        d.lam = d.scale = 0.1f + 0.7f * (u01(rng) - 0.05f) / 0.9f;
    } else if (m.method == msda::Method::kResizeMix) {
      d.cy = cy(rng);
      d.cx = cx(rng);
    }
    const int64_t off = p.tables.size(), boff = p.bits.size();
    p.tables.resize(off + msda::TableSize(m.method, H, W));
    p.bits.resize(boff + msda::BitsSize(m.method, H, W));
    double w;
    const msda::MaskOptions options{0.5, true, m.bilinear, false};
    p.params[i] = msda::PlanSample(m.method, d, i, n, options, H, W, p.tables.data() + off,
                                   off, boff, &w);
    if (p.params[i].kind == msda::kMaskBits) {
      if (elem || i == 0)
        for (auto &v : noise) v = normal(rng);
      msda::FMixMask(noise.data(), H, W, 3.0, msda::FMixOnes(d.lam, d.round_up, H, W),
                     p.bits.data() + boff);
    }
    p.targets[i] = msda::OneHotTarget(w, labels[i], labels[n - 1 - i], 0.1, kK);
    p.mirror[i] = mirror ? coin(rng) : 0;
    if (i == 0) p.weight0 = w;
  }
  // the old kernel reads FMix masks as H x W floats (its kMaskTable)
  p.old_params = p.params;
  p.old_tables = p.tables;
  std::vector<std::pair<int64_t, int64_t>> converted;  // (bits offset, float table offset)
  for (auto &q : p.old_params) {
    if (q.kind != msda::kMaskBits) continue;
    auto done = std::find_if(converted.begin(), converted.end(),
                             [&](const auto &c) { return c.first == q.mask_offset; });
    if (done != converted.end()) {
      q.mask_offset = done->second;
      continue;
    }
    const int64_t off = p.old_tables.size();
    for (int64_t k = 0; k < int64_t(H) * W; k++)
      p.old_tables.push_back(msda::MaskBit(p.bits.data() + q.mask_offset, k) ? 1.0f : 0.0f);
    converted.push_back({q.mask_offset, off});
    q.mask_offset = off;
  }
  return p;
}

template <typename Out, typename In>
void RunCase(const Device &dev, const Options &opt, const Case &cs, int n,
             std::vector<Row> &rows, int &failures) {
  const int H = cs.H, W = cs.W;
  const int64_t vol = int64_t(H) * W * kC;
  const int64_t in_set = n * vol * sizeof(In), out_set = n * vol * sizeof(Out);
  const int sets = static_cast<int>(std::clamp<int64_t>(
      (4 * dev.l2 + in_set + out_set - 1) / (in_set + out_set), 2, 64));
  In *in = nullptr;
  Out *out = nullptr, *ref = nullptr;
  float *targets = nullptr, *ref_targets = nullptr;
  CHECK(cudaMalloc(&in, in_set * sets));
  CHECK(cudaMalloc(&out, out_set * sets));
  CHECK(cudaMalloc(&ref, out_set));
  CHECK(cudaMalloc(&targets, int64_t(n) * kK * 4 * sets));
  CHECK(cudaMalloc(&ref_targets, int64_t(n) * kK * 4));
  FillRandom<<<2048, 256>>>(in, n * vol * sets, 12345 + n);
  CHECK(cudaGetLastError());
  const double bytes = double(in_set + out_set) + double(n) * kK * 4;  // what the op must move
  // the ceiling: a copy moving the same bytes (read + write), on buffers of their own
  void *ca = nullptr, *cb = nullptr;
  const size_t half_bytes = static_cast<size_t>(bytes / 2) / 16 * 16;
  CHECK(cudaMalloc(&ca, half_bytes * sets));
  CHECK(cudaMalloc(&cb, half_bytes * sets));
  const double copy_us = TimeMedian(opt.reps, [&](int k) {
    CHECK(cudaMemcpyAsync(static_cast<char *>(cb) + (k % sets) * half_bytes,
                          static_cast<char *>(ca) + (k % sets) * half_bytes, half_bytes,
                          cudaMemcpyDeviceToDevice));
  });
  const double copy_gbps = 2.0 * half_bytes / copy_us * 1e-3;
  auto add = [&](const char *method, const char *mode, const std::string &kernel, double us) {
    rows.push_back({dev.name, cs.name, method, mode, kernel, n, us, bytes, bytes / us * 1e-3,
                    copy_gbps});
    std::printf("%-18s %-20s %-5s %4d %-16s %9.1f us %7.0f GB/s  %5.1f %% of copy\n", cs.name,
                method, mode, n, kernel.c_str(), us, bytes / us * 1e-3,
                100.0 * (bytes / us * 1e-3) / copy_gbps);
  };
  add("-", "-", "copy", copy_us);

  std::vector<const In *> ins(n);
  std::vector<Out *> outs(n);
  std::vector<float *> tgt(n);
  auto point = [&](int set, Out *o, float *t) {
    for (int i = 0; i < n; i++) {
      ins[i] = in + set * n * vol + i * vol;
      outs[i] = o + (o == out ? set * n * vol : 0) + i * vol;
      tgt[i] = t + (t == targets ? int64_t(set) * n * kK : 0) + int64_t(i) * kK;
    }
  };
  const std::vector<float> norm = {123.7f, 116.3f, 103.5f, 1 / 58.4f, 1 / 57.1f, 1 / 57.4f};
  float *norm_gpu = DeviceCopy(norm);

  if (cs.normalize && cs.mirror) {  // the normalise-only baseline, checked against new, no mix
    Plan plain = MakePlan(kMethods[0], false, n, true, 7, H, W);
    for (auto &q : plain.params) q = msda::IdentityParams(int(&q - plain.params.data()));
    int *mirror_gpu = DeviceCopy(plain.mirror);
    std::vector<const uint8_t **> in_tab(sets);
    std::vector<half16 **> out_tab(sets);
    for (int s = 0; s < sets; s++) {
      point(s, out, targets);
      std::vector<const uint8_t *> iv(n);
      std::vector<half16 *> ov(n);
      for (int i = 0; i < n; i++) {
        iv[i] = reinterpret_cast<const uint8_t *>(ins[i]);
        ov[i] = reinterpret_cast<half16 *>(outs[i]);
      }
      in_tab[s] = const_cast<const uint8_t **>(DeviceCopy(iv));
      out_tab[s] = DeviceCopy(ov);
    }
    NormArgs na{nullptr, nullptr, mirror_gpu, {norm[0], norm[1], norm[2]},
                {norm[3], norm[4], norm[5]}, n, H, W};
    auto launch_norm = [&](int k) {
      NormArgs a = na;
      a.in = in_tab[k % sets];
      a.out = out_tab[k % sets];
      NormalizeOnly<<<dev.sms * 8, 256>>>(a);
    };
    launch_norm(0);
    CHECK(cudaDeviceSynchronize());
    // the oracle: the new kernel with every sample its own partner (mask 1 everywhere)
    point(0, ref, ref_targets);
    std::vector<SampleDesc<Out, In>> d(n);
    msda::BuildDescs<Out, In>(n, outs.data(), ins.data(), nullptr, tgt.data(), nullptr,
                              plain.params.data(), plain.targets.data(), plain.mirror.data(),
                              d.data());
    auto *dg = DeviceCopy(d);
    LaunchGeometry g = msda::PlanLaunch<In>(
        msda::MakeBatchShape(n, 1, H, W, kC, false, true, true, kK), true, true, dev.sms, 4);
    KernelArgs<Out, In> args{dg, nullptr, nullptr, norm_gpu, nullptr, nullptr, g};
    NewKernel<2, 3, false><<<g.blocks, g.threads>>>(args);
    CHECK(cudaDeviceSynchronize());
    const uint64_t diff = Diff(out, ref, out_set);
    if (diff) {
      std::printf("MISMATCH normalize_only vs new (no mixing): %llu words\n",
                  (unsigned long long)diff);
      failures++;
    }
    if (!opt.check_only) add("-", "-", "normalize_only", TimeMedian(opt.reps, launch_norm));
    CHECK(cudaFree(dg));
    CHECK(cudaFree(mirror_gpu));
    for (int s = 0; s < sets; s++) {
      CHECK(cudaFree(const_cast<const uint8_t **>(in_tab[s])));
      CHECK(cudaFree(out_tab[s]));
    }
  }

  for (const MethodSpec &m : kMethods) {
    if (!opt.only_method.empty() && opt.only_method != m.name) continue;
    for (bool elem : {false, true}) {
      if (opt.quick && (elem || n > 64)) continue;
      const char *mode = elem ? "elem" : "batch";
      if (!opt.only_mode.empty() && opt.only_mode != mode) continue;
      Plan plan = MakePlan(m, elem, n, cs.mirror, 1000 + int(m.method) * 7 + elem, H, W);
      float *tables = DeviceCopy(plan.tables), *old_tables = DeviceCopy(plan.old_tables);
      uint8_t *bits = DeviceCopy(plan.bits);
      const int *mirror = cs.mirror ? plan.mirror.data() : nullptr;
      // descriptors per rotation set, and one set writing to the reference buffers
      std::vector<SampleDesc<Out, In> *> new_descs(sets), old_descs(sets);
      for (int s = 0; s < sets; s++) {
        point(s, out, targets);
        std::vector<SampleDesc<Out, In>> d(n), od(n);
        msda::BuildDescs<Out, In>(n, outs.data(), ins.data(), nullptr, tgt.data(), nullptr,
                                  plan.params.data(), plan.targets.data(), mirror, d.data());
        msda::BuildDescs<Out, In>(n, outs.data(), ins.data(), nullptr, tgt.data(), nullptr,
                                  plan.old_params.data(), plan.targets.data(), mirror,
                                  od.data());
        new_descs[s] = DeviceCopy(d);
        old_descs[s] = DeviceCopy(od);
      }
      point(0, ref, ref_targets);
      std::vector<SampleDesc<Out, In>> rd(n);
      msda::BuildDescs<Out, In>(n, outs.data(), ins.data(), nullptr, tgt.data(), nullptr,
                                plan.old_params.data(), plan.targets.data(), mirror, rd.data());
      SampleDesc<Out, In> *ref_descs = DeviceCopy(rd);

      const msda::BatchShape shape = msda::MakeBatchShape(n, 1, H, W, kC, false, cs.out_planar,
                                                       cs.normalize, kK);
      const float *normp = cs.normalize ? norm_gpu : nullptr;
      // old: tiles, grid (blocks per sample, samples)
      const msda::old::TileGeometry tg = msda::old::PlanTiles(
          1, H, W, kC, false, cs.out_planar, sizeof(In), cs.normalize, kK);
      const int64_t smem = msda::old::StageBytes(tg, sizeof(In));
      const dim3 old_grid(static_cast<unsigned>(msda::old::GridX(tg)), n);
      auto launch_old = [&](SampleDesc<Out, In> *d) {
        msda::old::OldKernelArgs<Out, In> a{d, old_tables, normp, nullptr, nullptr, tg};
        msda::old::OldMixKernel<Out, In><<<old_grid, msda::old::kOldBlockThreads, smem>>>(a);
      };
      // new, at minimum blocks per SM of 2 (the op's: mix.cu), 3 and 4
      // (general: the general instance even where the plain one would run, as a baseline)
      auto run_new = [&](auto min_blocks, SampleDesc<Out, In> *d, bool timed,
                         bool general = false, bool fallback = false) -> double {
        constexpr int MB = decltype(min_blocks)::value;
        auto plan_new = [&](int sms, int per_sm) {
          LaunchGeometry p = msda::PlanLaunch<In>(shape, !fallback, true, sms, per_sm);
          p.plain = general ? msda::kGeneral
                            : msda::PlainLaunch<Out, In>(p, plan.params.data(), false,
                                                         cs.normalize ? norm.data() : nullptr);
          return p;
        };
        LaunchGeometry g = plan_new(1, 1);
        double us = 0;
        msda::WithInstance<Out, In>(g, [&](auto c, auto plain) {
          constexpr int C = decltype(c)::value;
          constexpr int kPlain = decltype(plain)::value;
          int per_sm = 0;
          CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
              &per_sm, NewKernel<MB, C, kPlain, Out, In>, msda::kBlockThreads, 0));
          g = plan_new(dev.sms, per_sm);
          auto launch = [&](int k) {
            KernelArgs<Out, In> a{d ? d : new_descs[k % sets], tables, bits, normp, nullptr,
                                  nullptr, g};
            NewKernel<MB, C, kPlain, Out, In><<<g.blocks, g.threads>>>(a);
          };
          if (timed)
            us = TimeMedian(opt.reps, launch);
          else
            launch(0);
        });
        return us;
      };
      // bit for bit: new (into out, set 0) against old (into ref)
      CHECK(cudaMemset(out, 0xff, out_set));
      CHECK(cudaMemset(ref, 0x7f, out_set));
      run_new(std::integral_constant<int, msda::kMinBlocks>{}, new_descs[0], false);
      launch_old(ref_descs);
      CHECK(cudaDeviceSynchronize());
      const uint64_t diff = Diff(out, ref, out_set) +
                            Diff(targets, ref_targets, int64_t(n) * kK * 4);
      if (diff) {
        std::printf("MISMATCH %s %s %s batch %d: %llu words differ between old and new\n",
                    cs.name, m.name, mode, n, (unsigned long long)diff);
        failures++;
      }
      if (!opt.check_only) {
        add(m.name, mode, "old", TimeMedian(opt.reps, [&](int k) {
              launch_old(old_descs[k % sets]);
            }));
        add(m.name, mode, "new",
            run_new(std::integral_constant<int, msda::kMinBlocks>{}, nullptr, true));
        if (opt.variants && std::is_integral_v<In> &&
            msda::PlainLaunch<Out, In>(msda::PlanLaunch<In>(shape, true, true, 1, 1),
                                       plan.params.data(), false, nullptr))
          add(m.name, mode, "new_general",  // what the plain instance saves
              run_new(std::integral_constant<int, msda::kMinBlocks>{}, nullptr, true, true));
        if (opt.variants && cs.H % 2)
          add(m.name, mode, "new_fallback",
              run_new(std::integral_constant<int, msda::kMinBlocks>{}, nullptr, true, true,
                      true));
        if (!opt.quick && opt.variants) {
          add(m.name, mode, "new_minblocks3",
              run_new(std::integral_constant<int, 3>{}, nullptr, true));
          add(m.name, mode, "new_minblocks4",
              run_new(std::integral_constant<int, 4>{}, nullptr, true));
        }
      }
      for (int s = 0; s < sets; s++) {
        CHECK(cudaFree(new_descs[s]));
        CHECK(cudaFree(old_descs[s]));
      }
      CHECK(cudaFree(ref_descs));
      CHECK(cudaFree(tables));
      CHECK(cudaFree(old_tables));
      CHECK(cudaFree(bits));
    }
  }
  CHECK(cudaFree(norm_gpu));
  CHECK(cudaFree(ca));
  CHECK(cudaFree(cb));
  CHECK(cudaFree(in));
  CHECK(cudaFree(out));
  CHECK(cudaFree(ref));
  CHECK(cudaFree(targets));
  CHECK(cudaFree(ref_targets));
}

void WriteJson(const std::string &path, const std::vector<Row> &rows) {
  FILE *f = std::fopen(path.c_str(), "w");
  if (!f) {
    std::fprintf(stderr, "kernel_bench: cannot write %s\n", path.c_str());
    std::exit(2);
  }
  std::fprintf(f, "[\n");
  for (size_t k = 0; k < rows.size(); k++) {
    const Row &r = rows[k];
    std::fprintf(f,
                 "  {\"gpu\": \"%s\", \"case\": \"%s\", \"method\": \"%s\", \"mode\": \"%s\", "
                 "\"batch\": %d, \"kernel\": \"%s\", \"us\": %.2f, \"bytes\": %.0f, "
                 "\"gbps\": %.1f, \"copy_gbps\": %.1f, \"fraction_of_copy\": %.4f}%s\n",
                 r.gpu.c_str(), r.kase.c_str(), r.method.c_str(), r.mode.c_str(), r.batch,
                 r.kernel.c_str(), r.us, r.bytes, r.gbps, r.copy_gbps, r.gbps / r.copy_gbps,
                 k + 1 < rows.size() ? "," : "");
  }
  std::fprintf(f, "]\n");
  std::fclose(f);
}

}  // namespace

int main(int argc, char **argv) {
  Options opt;
  for (int k = 1; k < argc; k++) {
    const std::string a = argv[k];
    auto next = [&]() -> std::string {
      if (k + 1 >= argc) {
        std::fprintf(stderr, "kernel_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++k];
    };
    if (a == "--out") {
      opt.out = next();
    } else if (a == "--reps") {
      opt.reps = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--batch") {
      if (opt.batches.size() == 2 && opt.batches[0] == 64 && opt.batches[1] == 256)
        opt.batches.clear();
      opt.batches.push_back(std::max(1, std::atoi(next().c_str())));
    } else if (a == "--quick") {
      opt.quick = true;
    } else if (a == "--check-only") {
      opt.check_only = true;
    } else if (a == "--no-variants") {
      opt.variants = false;
    } else if (a == "--case") {
      opt.only_case = next();
    } else if (a == "--method") {
      opt.only_method = next();
    } else if (a == "--mode") {
      opt.only_mode = next();
    } else {
      std::fprintf(stderr,
                   "usage: kernel_bench [--out FILE.json] [--reps N] [--batch B]... [--quick] "
                   "[--check-only] [--case NAME] [--method NAME] [--mode batch|elem] "
                   "[--no-variants]\n");
      return 2;
    }
  }
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::fprintf(stderr, "kernel_bench: no CUDA device\n");
    return 3;
  }
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  Device dev{prop.name, prop.multiProcessorCount, prop.l2CacheSize};
  std::printf("kernel_bench: %s, %d SMs, L2 %.0f MB, %d reps per figure (median)\n",
              dev.name.c_str(), dev.sms, dev.l2 / 1e6, opt.reps);
  std::vector<Row> rows;
  int failures = 0;
  for (int n : opt.batches) {
    for (const Case &cs : kCases) {
      if (!opt.only_case.empty() && opt.only_case != cs.name) continue;
      if (cs.in_bytes == 1 && cs.out_bytes == 2)
        RunCase<half16, uint8_t>(dev, opt, cs, n, rows, failures);
      else if (cs.in_bytes == 1)
        RunCase<float, uint8_t>(dev, opt, cs, n, rows, failures);
      else if (cs.in_bytes == 2)
        RunCase<half16, half16>(dev, opt, cs, n, rows, failures);
      else
        RunCase<float, float>(dev, opt, cs, n, rows, failures);
    }
  }
  if (!opt.check_only) WriteJson(opt.out, rows);
  std::printf("kernel_bench: %zu rows%s, %d mismatches\n", rows.size(),
              opt.check_only ? "" : (" -> " + opt.out).c_str(), failures);
  return failures ? 1 : 0;
}
