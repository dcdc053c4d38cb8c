// The draw of a batch (spec 2) as a plan: DrawBatch turns the op's random stream and the
// per-sample arguments into every sample's draw, mask parameters and label weight, the GMix
// tables, and the host-made masks still to make (FMix, ClassMix: host_masks.h). Both backends
// apply the same plan, so CPU and GPU see the same partner, lam, box and tables for a seed.

#ifndef DALI_MSDA_CSRC_MIX_PLAN_H_
#define DALI_MSDA_CSRC_MIX_PLAN_H_

#include <cmath>
#include <cstdint>
#include <vector>

#include "dali/core/random/philox.h"

#include "args.h"
#include "fmix.h"
#include "mask.h"
#include "params.h"

namespace msda {

using ::dali::Philox4x32_10;

/// A host-made mask still to make: sample `sample`'s H x W bits at `mask_offset` of the plan's
/// `bits`. FMix: from the sample's noise (given, or drawn from `rng`) with `ones` ones;
/// ClassMix: from `partner`'s label map, its classes picked by `rng`.
struct HostMaskJob {
  int sample, partner;
  Philox4x32_10 rng;     // positioned after the sample's (or the batch's) draw
  int64_t ones;          // FMix: FMixOnes
  int64_t mask_offset;   // where the H x W bits go in `bits`
};

/// What a batch's draw decided.
struct BatchPlan {
  std::vector<Draw> draws;           // the draw each sample used (after explicit lam / center)
  std::vector<SampleParams> params;  // its mask and partner
  std::vector<double> weights;       // its own label's weight (spec 1); a ClassMix sample's is
                                     // set when its mask is made (MakeClassMixMasks)
  std::vector<float> tables;         // per GMix mask: its H + W Gaussian factors (TableSize)
  std::vector<uint8_t> bits;         // per FMix / ClassMix mask: its H x W bits (BitsSize)
  std::vector<HostMaskJob> fmix_jobs, classmix_jobs;

  /// Empties the plan for the next batch; its vectors keep their memory (the bit masks of a
  /// batch of 256 224 x 224 FMix or ClassMix masks are 1.6 MB: allocated once, not per batch).
  void Clear() {
    draws.clear();
    params.clear();
    weights.clear();
    tables.clear();
    bits.clear();
    fmix_jobs.clear();
    classmix_jobs.clear();
  }

  /// The `params` output row of sample i (method m): (applied, lam, cy, cx); a ClassMix
  /// sample reports its mask's mean as lam and no centre, a box drawn from ranges (spec 4b)
  /// the share it leaves (its label weight) and its top-left pixel.
  void ParamsRow(int i, Method m, float *row, int H, int W) const {
    const Draw &d = draws[i];
    const bool map_made = Traits(m).needs_maps && params[i].partner != i;
    row[0] = d.apply ? 1.0f : 0.0f;
    if (d.ranged) {
      row[1] = static_cast<float>(AreaLeft(RangedBox(d), H, W));
      row[2] = static_cast<float>(d.by0);
      row[3] = static_cast<float>(d.bx0);
    } else {
      row[1] = map_made ? static_cast<float>(weights[i]) : d.Reported(m);
      row[2] = map_made ? 0.0f : static_cast<float>(d.cy);
      row[3] = map_made ? 0.0f : static_cast<float>(d.cx);
    }
  }
};

/// The plan of a batch of n H x W images. `rng_of(i)` is sample i's stream (the op's
/// GetSampleRNG): in batch mode sample 0's draws for the batch (one lam, one centre, one
/// decision), in elem mode each sample draws its own, in pair mode the first sample of each pair
/// (i < n - 1 - i) draws for both: sample n - 1 - i takes its draw and continues from its stream
/// (FMix's noise, ClassMix's classes), so the pair shares one mask (ClassMix: one pick).
/// Written into `plan` (the previous batch's, cleared: its memory is reused).
template <typename RngOf>
void DrawBatch(const MixArgs &args, const SampleArgs &sa, int n, int H, int W,
               const RngOf &rng_of, BatchPlan &plan) {
  plan.Clear();
  plan.draws.resize(n);
  plan.params.resize(n);
  plan.weights.assign(n, 1.0);
  if (n == 0) return;
  const bool explicit_lam = sa.lam.HasExplicitValue();
  const bool explicit_center = sa.center.HasExplicitValue();
  const Mode mode = args.mode;

  // after the draw, from the same stream: FMix's coin (then its noise), ResizeMix's scale
  auto draw = [&](Philox4x32_10 &rng, int i) {
    const MethodTraits &t = Traits(sa.methods[i]);
    Draw d = DrawOne(rng, sa.alpha[i], sa.prob[i], H, W);
    if (t.draws_coin) d.round_up = Uniform01(rng) > 0.5;
    if (t.draws_scale)
      d.scale = static_cast<float>(args.scale_min +
                                   (double(args.scale_max) - args.scale_min) * Uniform01(rng));
    const BoxRanges &ranges = args.cutmix_ranges;  // CutMix's box from ranges (spec 4b)
    if (sa.methods[i] == Method::kCutMix && ranges.kind == BoxRanges::kMinMax)
      DrawMinMaxBox(rng, ranges, H, W, d);
    if (sa.methods[i] == Method::kCutMix && ranges.kind == BoxRanges::kArea)
      MSDA_ENFORCE(DrawAreaBox(rng, ranges, H, W, d),
                   "`cutmix_area`: no box of the ranges fitted the image in 2^20 draws.");
    return d;
  };
  Draw batch_draw{};
  Philox4x32_10 batch_rng = rng_of(0);
  if (mode == Mode::kBatch) batch_draw = draw(batch_rng, 0);
  // ResizeMix in batch mode: one tau per batch, a centre per sample (the official code), drawn
  // in sample order from the batch's stream after its draw
  Philox4x32_10 centre_rng = batch_rng;
  // pair mode: each sample's stream after its draw, for the second sample of its pair
  std::vector<Philox4x32_10> drawn_rng(mode == Mode::kPair ? n : 0, batch_rng);
  // The mask of the previous applied sample: reused when a sample has the same draw (batch mode),
  // so that GMix tables are computed once per batch there rather than once per sample.
  int prev = -1;
  for (int i = 0; i < n; i++) {
    const Method method = sa.methods[i];
    const MethodTraits &t = Traits(method);
    const int j = n - 1 - i;  // partner: the batch reversed; the middle of an odd batch is alone
    Draw &d = plan.draws[i];
    d = batch_draw;
    Philox4x32_10 rng = batch_rng;
    // pair mode, the second sample of a pair: the draw of the first (and its mask, below)
    const bool pair_second = mode == Mode::kPair && j < i;
    if (pair_second) {
      d = plan.draws[j];
      rng = drawn_rng[j];
    } else if (mode != Mode::kBatch) {
      rng = rng_of(i);
      d = draw(rng, i);
      if (mode == Mode::kPair) drawn_rng[i] = rng;
    } else if (t.draws_scale) {
      d.cy = UniformInt(centre_rng, H);
      d.cx = UniformInt(centre_rng, W);
    }
    if (explicit_lam) d.lam = d.scale = sa.lam[i].data[0];
    if (explicit_center) {
      d.cy = CenterFromRelative(sa.center[i].data[0], H);
      d.cx = CenterFromRelative(sa.center[i].data[1], W);
    }
    SampleParams &p = plan.params[i];
    // a mask that depends on more than the draw is not shared: FMix's noise only in batch mode
    // (one per batch) and within a pair (the same stream), ClassMix's partner map never
    const int from = pair_second ? j : prev;
    const bool shareable =
        t.shares_mask && (t.data != MaskData::kBits || mode == Mode::kBatch || pair_second);
    const Draw *pd = from >= 0 ? &plan.draws[from] : nullptr;
    if (d.apply && j != i && shareable && pd && *pd == d &&
        sa.hmix_ratio[from] == sa.hmix_ratio[i] && sa.methods[from] == method) {
      p = plan.params[from];  // same draw as the previous mixed sample (or the pair's): same mask
      p.partner = j;
      plan.weights[i] = plan.weights[from];
      continue;
    }
    const int64_t table_offset = plan.tables.size(), bits_offset = plan.bits.size();
    const bool mixes = d.apply && j != i;
    plan.tables.resize(table_offset + (mixes ? TableSize(method, H, W) : 0));
    plan.bits.resize(bits_offset + (mixes ? BitsSize(method, H, W) : 0));
    double w = 1.0;
    p = PlanSample(method, d, i, n, args.Options(sa.hmix_ratio[i]), H, W,
                   plan.tables.data() + table_offset, table_offset, bits_offset, &w);
    if (p.kind == kMaskBits && t.needs_maps) {
      plan.classmix_jobs.push_back({i, j, mode == Mode::kBatch ? batch_rng : rng, 0,
                                    bits_offset});
      plan.weights[i] = NAN;  // set once its mask is made
    } else {
      if (p.kind == kMaskBits)
        plan.fmix_jobs.push_back({i, j, rng, FMixOnes(d.lam, d.round_up, H, W), bits_offset});
      plan.weights[i] = w;
    }
    if (p.partner != i) prev = i;
  }
}

}  // namespace msda

#endif  // DALI_MSDA_CSRC_MIX_PLAN_H_
