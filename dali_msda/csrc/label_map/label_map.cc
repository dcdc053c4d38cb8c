// msda.LabelMap: label maps as class indices, whatever form their PNG takes, or a clear error.
//
// Segmentation sets store class indices in two ways: single-channel PNGs whose grey levels are
// the indices (ADE20K, VOC's SegmentationClassAug) and palette PNGs whose pixel values are the
// indices, shown through a palette of colours (VOC's SegmentationClass). DALI's decoder turns a
// palette PNG into colours (or grey levels of those colours), not indices; so this op takes the
// encoded file (for its header and palette) and its decode with output_type ANY_DATA (one
// channel for a grey PNG, as cheap as a grey decode; colours for a palette PNG) or RGB, and gives
// each pixel's index as Pillow's Image.open reads it:
//   grey, 8 bits: the grey level; 2 and 4 bits: the level as decoders scale it (as Pillow);
//   grey, 1 bit: 0 or 1;
//   palette (any bit depth): the index whose colour the pixel shows (a colour that two indices
//     share is refused where a pixel shows it: the index cannot be recovered);
// and refuses maps whose values cannot be indices: RGB, RGBA, grey with alpha, 16-bit grey
// (decoders scale it to 8 bits), JPEG (lossy: neighbouring values appear at edges), other
// formats unless every pixel is grey. Then every index must be a class (below `num_classes`) or
// `ignore_index`. Every error names the file (the reader's source info), the rule and the value.
// CPU only, as the maps' decode.

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "dali/pipeline/operator/checkpointing/stateless_operator.h"
#include "png_info.h"

namespace msda {

using namespace ::dali;  // NOLINT

namespace {

std::string Hex(uint32_t rgb) {
  return make_string("(", (rgb >> 16) & 255, ", ", (rgb >> 8) & 255, ", ", rgb & 255, ")");
}

}  // namespace

class LabelMap : public StatelessOperator<CPUBackend> {
 public:
  explicit LabelMap(const OpSpec &spec)
      : StatelessOperator<CPUBackend>(spec),
        num_classes_(spec.GetArgument<int>("num_classes")),
        ignore_index_(spec.GetArgument<int>("ignore_index")) {
    DALI_ENFORCE(num_classes_ >= 1 && num_classes_ <= 256,
                 make_string("msda.label_map: `num_classes` must be in [1, 256] (uint8 maps); "
                             "got ", num_classes_, "."));
    DALI_ENFORCE(ignore_index_ >= -1 && ignore_index_ <= 255,
                 make_string("msda.label_map: `ignore_index` must be in [0, 255], or -1 for "
                             "none; got ", ignore_index_, "."));
  }

 protected:
  bool SetupImpl(std::vector<OutputDesc> &output_desc, const Workspace &ws) override {
    const auto &enc = ws.Input<CPUBackend>(0);
    const auto &dec = ws.Input<CPUBackend>(1);
    const int n = dec.num_samples();
    DALI_ENFORCE(enc.num_samples() == n,
                 make_string("msda.label_map: ", enc.num_samples(), " encoded maps but ", n,
                             " decoded ones."));
    DALI_ENFORCE(enc.type() == DALI_UINT8 && dec.type() == DALI_UINT8,
                 make_string("msda.label_map: the encoded and the decoded maps must be uint8; "
                             "got ", enc.type(), " and ", dec.type(), "."));
    TensorListShape<3> shape(n);
    for (int i = 0; i < n; i++) {
      const auto s = dec.tensor_shape(i);
      DALI_ENFORCE(s.size() == 3 && (s[2] == 1 || s[2] == 3 || s[2] == 4),
                   make_string("msda.label_map: the decoded maps must be H x W x C with C 1, 3 "
                               "or 4 (decode them with output_type=types.ANY_DATA or RGB); "
                               "got ", s, "."));
      shape.set_tensor_shape(i, {s[0], s[1], 1});
    }
    output_desc.resize(1);
    output_desc[0] = {shape, DALI_UINT8};
    return true;
  }

  void RunImpl(Workspace &ws) override {
    const auto &enc = ws.Input<CPUBackend>(0);
    const auto &dec = ws.Input<CPUBackend>(1);
    auto &out = ws.Output<CPUBackend>(0);
    out.SetLayout("HWC");
    auto &tp = ws.GetThreadPool();
    for (int i = 0; i < dec.num_samples(); i++) {
      const auto s = dec.tensor_shape(i);
      tp.AddWork([&, i](int) { Convert(enc, dec, out, i); }, s[0] * s[1]);
    }
    tp.RunAll();
  }

 private:
  [[noreturn]] void Fail(const TensorList<CPUBackend> &enc, int i, const std::string &what) {
    const std::string &src = enc.GetMeta(i).GetSourceInfo();
    DALI_FAIL(make_string("msda.label_map: the label map ",
                          src.empty() ? "of sample " + std::to_string(i) : src, " ", what));
  }

  void Convert(const TensorList<CPUBackend> &enc, const TensorList<CPUBackend> &dec,
               TensorList<CPUBackend> &out, int i) {
    const auto s = dec.tensor_shape(i);
    const int64_t W = s[1], pixels = s[0] * s[1], C = s[2];
    const uint8_t *px = dec.tensor<uint8_t>(i);
    uint8_t *dst = out.mutable_tensor<uint8_t>(i);
    const PngInfo info = ReadPngInfo(enc.tensor<uint8_t>(i), volume(enc.tensor_shape(i)));
    const std::string form = LabelMapFormProblem(info);
    if (!form.empty()) Fail(enc, i, form);
    auto color = [&](int64_t k) {
      return C == 1 ? 0x10101u * px[k]
                    : (uint32_t(px[C * k]) << 16) | (uint32_t(px[C * k + 1]) << 8) |
                          px[C * k + 2];
    };
    if (info.format == MapFormat::kPng && info.color_type == kPalette) {  // grey too, if C == 1
      const PaletteLookup lookup(info.palette);
      uint32_t last = 0xffffffffu;
      int index = 0;
      for (int64_t k = 0; k < pixels; k++) {
        const uint32_t c = color(k);
        if (c != last) {  // runs of one class are long: one lookup per run
          index = lookup.Find(c);
          last = c;
          if (index == PaletteLookup::kAmbiguous) {
            const auto shared = lookup.Sharing(info.palette, c);
            Fail(enc, i, make_string("is a palette PNG whose palette gives indices ", shared[0],
                                     " and ", shared[1], " the same colour ", Hex(c),
                                     ", which pixel (", k / W, ", ", k % W, ") shows: its index "
                                     "cannot be recovered from the decoded colour",
                                     kConvertMasks, "."));
          }
          if (index == PaletteLookup::kAbsent)
            Fail(enc, i, make_string("is a palette PNG but pixel (", k / W, ", ", k % W,
                                     ") decodes to ", Hex(c), ", no colour of its palette of ",
                                     info.palette.size(),
                                     C == 1 ? " (decoded to grey levels: decode palette maps "
                                              "with output_type=types.ANY_DATA or RGB)" : "",
                                     kConvertMasks, "."));
        }
        dst[k] = static_cast<uint8_t>(index);
      }
    } else {  // grey: a greyscale PNG's values (1 bit: 0 / 255 decoded, 0 / 1 the index)
      if (info.format != MapFormat::kPng && C > 1) {
        for (int64_t k = 0; k < pixels; k++)
          if (px[C * k] != px[C * k + 1] || px[C * k] != px[C * k + 2])
            Fail(enc, i, make_string("is not a PNG and has colour (pixel (", k / W, ", ", k % W,
                                     ") is ", Hex(color(k)), "): a label map's values must be "
                                     "class indices, one channel", kConvertMasks, "."));
      }
      const int shift = info.format == MapFormat::kPng && info.bit_depth == 1 ? 7 : 0;
      if (C == 1 && shift == 0) {
        std::memcpy(dst, px, pixels);
      } else {
        for (int64_t k = 0; k < pixels; k++) dst[k] = px[C * k] >> shift;
      }
    }
    // every label a class or the ignore label: one branch-free (vectorised) pass, then the
    // first bad pixel found for the error
    const int K = num_classes_, ignore = ignore_index_;
    uint8_t any = 0;
    for (int64_t k = 0; k < pixels; k++) any |= uint8_t((dst[k] >= K) & (dst[k] != ignore));
    for (int64_t k = 0; any && k < pixels; k++)
      if (dst[k] >= K && dst[k] != ignore)
        Fail(enc, i, make_string("holds label ", int(dst[k]), " at pixel (", k / W, ", ", k % W,
                                 "): labels must be classes (below `num_classes` ", num_classes_,
                                 ") or the ignore label (", ignore_index_, ")."));
  }

  int num_classes_, ignore_index_;
};

}  // namespace msda

DALI_SCHEMA(msda__LabelMap)
  .DocStr(R"code(Label maps as class indices, from their encoded PNG (header and palette) and its
decode (``output_type=types.ANY_DATA``, or RGB), as Pillow's ``Image.open`` reads them: a greyscale PNG's values, a palette PNG's
indices (e.g. Pascal VOC's SegmentationClass as it comes); maps whose values cannot be indices
(RGB, RGBA, grey with alpha, 16-bit grey, JPEG) stop the pipeline with an error naming the file,
as does a label that is neither below ``num_classes`` nor ``ignore_index``. Output: H x W x 1
uint8.

Example::

    pngs, _ = fn.readers.file(files=masks)
    decoded = fn.decoders.image(pngs, device="cpu", output_type=types.ANY_DATA)
    maps = fn.msda.label_map(pngs, decoded, num_classes=21, ignore_index=255)
)code")
  .NumInput(2)
  .NumOutput(1)
  .InputDox(0, "encoded", "TensorList of uint8 on the CPU", "Each map's encoded file.")
  .InputDox(1, "decoded", "TensorList of uint8 on the CPU (HWC, 1, 3 or 4 channels)",
            "Each map decoded with ``output_type=types.ANY_DATA`` (or RGB).")
  .AddArg("num_classes", "Labels must be below this (or be ``ignore_index``).", DALI_INT32)
  .AddOptionalArg("ignore_index", "The label of pixels without a class; -1: none.", 255);

DALI_REGISTER_OPERATOR(msda__LabelMap, ::msda::LabelMap, ::dali::CPU);
