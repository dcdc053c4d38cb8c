// msda.Mix: schema, CPU backend and CPU registration.
//
// CPU work decomposition: sample i and its partner j = B - 1 - i are processed together, cut into
// blocks of whole rows (about kTaskElems elements per sample) that DALI's thread pool runs,
// largest first: a task mixes a row block of i and then the same rows of j, which read the same
// two input blocks, so each input is read from memory once. Within a row the mask is constant
// or piecewise constant for box masks (Mixup, CutMix, HMix), so a row is split into spans that are
// copied (M = 1: own image, M = 0: partner) or blended with one weight; GMix computes the weight
// per pixel from the two Gaussian factor tables. Each span path gives the same bits as the
// generic Blend() of mask.h, which the GPU kernel evaluates.

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

/// GMix row: m = gy * gx[k] (or 1 - that), then the blend; the same product as MaskAt().
template <bool kInvert, typename Out, typename In>
MSDA_CPU_CLONES void GaussBlendSpanAuto(Out *__restrict out, const In *__restrict self,
                                        const In *__restrict other, float gy,
                                        const float *__restrict gx, int64_t n) {
  for (int64_t k = 0; k < n; k++) {
    float m = gy * gx[k];
    if (kInvert) m = 1.0f - m;
    out[k] = ConvertOut<Out>(m * LoadIn(self[k]) + (1.0f - m) * LoadIn(other[k]));
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
MSDA_V3 inline void Store8(float *p, __m256 v) { _mm256_storeu_ps(p, v); }
MSDA_V3 inline void Store8(float16 *p, __m256 v) {
  _mm_storeu_si128((__m128i *)p, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
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
    const __m256 om = _mm256_sub_ps(one, m);
    Store8(out + k, _mm256_add_ps(_mm256_mul_ps(m, Load8(self + k)),
                                  _mm256_mul_ps(om, Load8(other + k))));
  }
  for (; k < n; k++) {
    float m = gy * gx[k];
    if (kInvert) m = 1.0f - m;
    out[k] = ConvertOut<Out>(m * LoadIn(self[k]) + (1.0f - m) * LoadIn(other[k]));
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

/// Rows [q0, q1) of one sample (see Geometry for the row numbering).
template <typename Out, typename In>
void MixRows(Out *out, const In *self, const In *other, const SampleParams &p,
             const float *tables, const Geometry &g, int64_t q0, int64_t q1) {
  const int64_t len = g.RowLen();
  const int inner = g.inner;
  // GMix: the column factors repeated over the channels, so that the row loop vectorises
  std::vector<float> gx(p.kind == kMaskGauss ? len : 0);
  for (int64_t k = 0; k < static_cast<int64_t>(gx.size()); k++)
    gx[k] = tables[p.table_offset + g.H + k / inner];
  auto misses_box = [&](int64_t q) {
    const int r = q % g.H;
    return r < p.y0 || r >= p.y1 || p.x0 == p.x1;
  };
  for (int64_t q = q0; q < q1;) {
    const int r = q % g.H;
    Out *o = out + q * len;
    const In *a = self + q * len, *b = other + q * len;
    if (p.kind == kMaskGauss) {
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
      ConvertSpan(o + k0, b + k0, k1 - k0);  // inside the box: the partner, exactly
      BlendSpan(o + k1, a + k1, b + k1, len - k1, p.outside);
      q++;
    }
  }
}

void WriteMask(float *mask, const SampleParams &p, const float *tables, int H, int W) {
  for (int r = 0; r < H; r++)
    for (int c = 0; c < W; c++) mask[int64_t(r) * W + c] = MaskAt(p, tables, H, r, c);
}

}  // namespace

template <>
void Mix<CPUBackend>::RunImpl(Workspace &ws) {
  const auto &in = ws.Input<CPUBackend>(0);
  auto &out = ws.Output<CPUBackend>(0);
  const int n = in.num_samples();
  DrawParams(n);
  SetOutputLayouts(ws);

  auto &tp = ws.GetThreadPool();
  const Geometry g = geom_;
  const int64_t rows = g.Rows();
  const int64_t rows_per_task =
      std::max<int64_t>(1, kTaskElems / std::max<int64_t>(1, g.RowLen()));
  const float *tables = tables_.data();
  TYPE_SWITCH(in.type(), type2id, In, (uint8_t, float16, float), (
    TYPE_SWITCH(out.type(), type2id, Out, (uint8_t, float16, float), (
      auto iv = view<const In>(in);
      auto ov = view<Out>(out);
      const SampleParams *params = params_.data();
      for (int i = 0; i < (n + 1) / 2; i++) {
        const int j = n - 1 - i;  // the pair (i, j); i == j for the middle of an odd batch
        for (int64_t q0 = 0; q0 < rows; q0 += rows_per_task) {
          int64_t q1 = std::min(rows, q0 + rows_per_task);
          tp.AddWork([=](int) {
            for (int s : {i, j}) {
              const SampleParams &p = params[s];
              MixRows<Out, In>(ov.data[s], iv.data[s], iv.data[p.partner], p, tables, g, q0, q1);
              if (j == i) break;
            }
          }, (q1 - q0) * g.RowLen() * (i == j ? 1 : 2));
        }
      }
    ), DALI_FAIL(make_string("Unsupported output type ", out.type(), ".")));  // NOLINT
  ), DALI_FAIL(make_string("Unsupported input type ", in.type(), ".")));  // NOLINT
  if (output_mask_) {
    auto mv = view<float>(ws.Output<CPUBackend>(MaskOutputIdx()));
    for (int i = 0; i < n; i++)
      tp.AddWork([=, this](int) { WriteMask(mv.data[i], params_[i], tables, g.H, g.W); },
                 int64_t(g.H) * g.W);
  }
  tp.RunAll();

  auto tv = view<float>(ws.Output<CPUBackend>(1));
  for (int i = 0; i < n; i++)
    std::copy_n(&targets_[int64_t(i) * K_], K_, tv.data[i]);
  if (output_params_) {
    auto pv = view<float>(ws.Output<CPUBackend>(ParamsOutputIdx()));
    for (int i = 0; i < n; i++) ParamsRow(i, pv.data[i]);
  }
}

}  // namespace msda

// clang-format off
DALI_SCHEMA(msda__Mix)
  .DocStr(R"code(Mixes a batch of images with Mixup, CutMix, HMix or GMix and returns soft labels.

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

The outputs are ``(mixed, targets)``, then ``mask`` with ``output_mask=True``, then ``params``
with ``output_params=True``:
``mixed`` has the layout and shape of ``images`` and type ``dtype``; ``targets`` are float32
vectors of length K; ``mask`` is the float32 H x W mask each sample got (layout "HW").

Example::

    images, labels = fn.readers.file(file_root=root, random_shuffle=True, name="Reader")
    images = fn.decoders.image(images, device="mixed")
    images = fn.resize(images, size=(224, 224))
    mixed, targets = fn.msda.mix(images, labels, method="hmix", alpha=1.0, num_classes=1000)
)code")
  .NumInput(2)
  .InputDox(0, "images", "TensorList of uint8, float16 or float32",
            "A batch of images (HWC, CHW) or sequences (FHWC, FCHW) of one shape. A missing "
            "layout means HWC (3-D) or FHWC (4-D).")
  .InputDox(1, "labels", "TensorList on the CPU",
            "Integer class indices, one per sample (then ``num_classes`` is required), or float32 "
            "soft-label vectors of length K (e.g. from an earlier mix), mixed as vectors.")
  .InputDevice(1, ::dali::InputDevice::CPU)
  .AllowSequences()
  .OutputFn([](const ::dali::OpSpec &spec) {
    return 2 + spec.GetArgument<bool>("output_mask") + spec.GetArgument<bool>("output_params");
  })
  .AddOptionalArg("method", R"code(Mixing method: ``"mixup"``, ``"cutmix"``, ``"hmix"`` or
``"gmix"``. Required unless ``method_id`` is given.)code", std::string())
  .AddOptionalArg("method_id", R"code(Method per sample as an int32 argument input: 0 mixup,
1 cutmix, 2 hmix, 3 gmix; overrides ``method``. It lets a pipeline switch methods without being
rebuilt (a schedule fed by ``fn.external_source``) or pick one at random per batch or sample, as
timm's ``switch_prob`` does (e.g. ``fn.random.coin_flip(probability=0.5, dtype=types.INT32)``).
In ``"batch"`` mode it must be the same for every sample.)code", DALI_INT32, nullptr, true)
  .AddOptionalArg("alpha", "Parameter of the Beta(alpha, alpha) distribution of ``lam``; > 0.",
                  1.0f, true)
  .AddOptionalArg("prob", "Probability that mixing is applied (per batch, or per sample in "
                  "``\"elem\"`` mode); in [0, 1].", 1.0f, true)
  .AddOptionalArg("hmix_ratio", "HMix: the share r of ``1 - lam`` given to the box (side ratio "
                  "``sqrt(r * (1 - lam))``); 0 is Mixup, 1 is CutMix with area correction. In "
                  "[0, 1].", 0.5f, true)
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
  .AddOptionalArg("output_mask", "Also return the mask of each sample (float32, H x W, the "
                  "weight of the sample's own image).", false)
  .AddOptionalArg("output_params", R"code(Also return, per sample, the float32 vector
``(applied, lam, cy, cx)``: whether mixing was drawn to apply (1 or 0), the ``lam`` and the pixel
centre it used (drawn or explicit). It comes after ``mask`` when both are requested.)code", false)
  .AddRandomSeedArg();
// clang-format on

DALI_REGISTER_OPERATOR(msda__Mix, ::msda::Mix<::dali::CPUBackend>, ::dali::CPU);
