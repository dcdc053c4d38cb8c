// The CPU backend's row loops (dali_msda/csrc/mix/cpu_rows.h: MixRows, MixRowsFused and
// BitRunEnd) called directly on one sample's buffers, for tests/test_row_loops.py: the spans a
// row is split into must cover it exactly, so that no element is written twice with different
// values, left unwritten or written outside the row (which the operator's tests cannot see where
// a later row overwrites it).

#include <cstdint>

#include "mix/cpu_rows.h"

namespace {

/// A sample's mask parameters: a bit mask at offset 0 of the bits (kMaskBits) or a box (kMaskBox:
/// box = y0, y1, x0, x1, and `outside`).
msda::SampleParams Params(int kind, const int *box, float outside) {
  msda::SampleParams p{};
  p.kind = kind;
  p.y0 = box[0];
  p.y1 = box[1];
  p.x0 = box[2];
  p.x1 = box[3];
  p.outside = outside;
  p.mask_offset = 0;
  return p;
}

template <typename Out>
void Rows(Out *out, const uint8_t *own, const uint8_t *partner, int H, int W, int C, int planar,
          int kind, const int *box, float outside, const uint8_t *bits, int64_t q0, int64_t q1) {
  const msda::BatchShape g = msda::MakeBatchShape(1, 1, H, W, C, planar, planar, false, 1);
  msda::cpu::MixRows<Out, uint8_t>(out, own, partner, Params(kind, box, outside), nullptr, bits,
                                   g, q0, q1);
}

template <typename Out>
void FusedRows(Out *out, const uint8_t *own, const uint8_t *partner, int H, int W, int C,
               int in_planar, int out_planar, int flip_own, int flip_partner, int kind,
               const int *box, float outside, const uint8_t *bits, const float *norm, int64_t q0,
               int64_t q1) {
  const msda::BatchShape g =
      msda::MakeBatchShape(1, 1, H, W, C, in_planar, out_planar, norm != nullptr, 1);
  // one thread's buffers for every call, as the operator's tasks reuse theirs (what a row does
  // not gather is what an earlier row or sample left there)
  static msda::cpu::RowBuffers buf;
  msda::cpu::MixRowsFused<Out, uint8_t>(out, own, partner, flip_own, flip_partner,
                                        Params(kind, box, outside), nullptr, bits, g, norm, q0,
                                        q1, buf);
}

}  // namespace

/// BitRunEnd: the end of the run of equal bits from column c0 of the row whose first bit is
/// `row`.
extern "C" int msda_bit_run_end(const uint8_t *bits, int64_t row, int c0, int W) {
  return msda::cpu::BitRunEnd(bits, row, c0, W);
}

/// MixRows over rows [q0, q1) of one uint8 sample (H x W x C; planar: C x H x W), its mask a
/// bit mask (kind kMaskBits: `bits`, H x W) or a box (kMaskBox: box = y0, y1, x0, x1, and
/// `outside`), into `out`: uint8 (out_type 0) or float32 (out_type 2).
extern "C" int msda_mix_rows(int out_type, void *out, const uint8_t *own, const uint8_t *partner,
                             int H, int W, int C, int planar, int kind, const int *box,
                             float outside, const uint8_t *bits, int64_t q0, int64_t q1) {
  if (out_type == 0)
    Rows(static_cast<uint8_t *>(out), own, partner, H, W, C, planar, kind, box, outside, bits,
         q0, q1);
  else if (out_type == 2)
    Rows(static_cast<float *>(out), own, partner, H, W, C, planar, kind, box, outside, bits, q0,
         q1);
  else
    return -1;
  return 0;
}

/// MixRowsFused over frame-rows [q0, q1) of one uint8 sample (H x W x C; in_planar: C x H x W),
/// mirrored where flip_own / flip_partner say, normalised when `norm` (mean[C], then inv_std[C])
/// is given, into `out` of out_type 0 (uint8), 1 (float16) or 2 (float32), planar or not; the
/// mask as for msda_mix_rows.
extern "C" int msda_mix_rows_fused(int out_type, void *out, const uint8_t *own,
                                   const uint8_t *partner, int H, int W, int C, int in_planar,
                                   int out_planar, int flip_own, int flip_partner, int kind,
                                   const int *box, float outside, const uint8_t *bits,
                                   const float *norm, int64_t q0, int64_t q1) {
  auto run = [&](auto *o) {
    FusedRows(o, own, partner, H, W, C, in_planar, out_planar, flip_own, flip_partner, kind, box,
              outside, bits, norm, q0, q1);
  };
  if (out_type == 0)
    run(static_cast<uint8_t *>(out));
  else if (out_type == 1)
    run(static_cast<dali::float16 *>(out));
  else if (out_type == 2)
    run(static_cast<float *>(out));
  else
    return -1;
  return 0;
}
