// msda.ImageCheck: an encoded image that cannot decode, named before the decoder sees it.
//
// A file that holds only a JPEG's headers makes DALI's decoder fail with "nvImageCodec failure:
// '#4'" and no file name (and DALI 2.4's CPU decoder can take the process down after a failed
// batch): one such file in a 1.28 M-image set stops a run hours in without saying which. This
// op reads each encoded stream's structure on the CPU (no decoding: its headers, up to the
// first scan) and stops the pipeline naming the file (the reader's source info) and the rule;
// the stream itself passes through unchanged (shared, not copied). The rules, each a file that
// no decoder can make an image of:
//   empty file;
//   JPEG: segments that run past the end of the file, no frame header (SOFn) before the first
//     scan, no scan (SOS) at all (only headers), or a scan header cut short;
//   PNG: no IHDR first, a chunk that runs past the end before the image data, no IDAT;
//   a format DALI does not decode (not JPEG, PNG, JPEG 2000, TIFF, BMP, PNM or WebP).
// A JPEG cut inside its scan data passes: decoders make an image of the part there is (the
// scanner, `python -m dali_msda.pipelines.scan`, notes such files).

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "dali/pipeline/operator/checkpointing/stateless_operator.h"
#include "../label_map/png_info.h"

namespace msda {

using namespace ::dali;  // NOLINT

namespace {

std::string Byte(uint8_t b) {
  static const char *hex = "0123456789abcdef";
  return std::string{hex[b >> 4], hex[b & 15]};
}

/// Why an encoded image cannot decode ("" when its structure is sound), from its bytes.
std::string StreamProblem(const uint8_t *p, int64_t n) {
  if (n == 0) return "is empty (0 bytes)";
  if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) {
    bool frame = false;
    int64_t at = 2;
    while (at + 2 <= n) {  // a marker (2 bytes), then its length (2) where it has one
      if (p[at] != 0xff)
        return make_string("is a JPEG whose segments break off at byte ", at,
                           " (no marker where one must be)");
      const uint8_t marker = p[at + 1];
      if (marker == 0xff) {  // fill byte
        at++;
        continue;
      }
      if (marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {  // no length
        at += 2;
        continue;
      }
      if (marker == 0xd9)
        return "is a JPEG that ends (EOI) before any image data: it holds only headers";
      if (at + 4 > n) break;  // cut inside a length
      const int64_t len = (int64_t(p[at + 2]) << 8) | p[at + 3];
      if (len < 2 || at + 2 + len > n)
        return make_string("is a JPEG whose segment at byte ", at, " (marker 0x", Byte(marker),
                           ", ", len, " bytes) runs past the end of the file (", n, " bytes)");
      const bool sof = marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 &&
                       marker != 0xcc;
      frame = frame || sof;
      if (marker == 0xda) {  // start of scan: the image data follows
        if (!frame) return "is a JPEG with a scan (SOS) but no frame header (SOFn) before it";
        if (at + 2 + len >= n) return "is a JPEG whose first scan holds no data";
        return "";
      }
      at += 2 + len;
    }
    return make_string("is a JPEG with no image data: its ", n,
                       " bytes hold headers only, no start-of-scan (SOS) marker");
  }
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (n >= 8 && std::memcmp(p, kPng, 8) == 0) {
    int64_t at = 8;
    bool first = true;
    while (at + 8 <= n) {
      const int64_t len = (int64_t(p[at]) << 24) | (int64_t(p[at + 1]) << 16) |
                          (int64_t(p[at + 2]) << 8) | p[at + 3];
      const uint8_t *type = p + at + 4;
      if (first && std::memcmp(type, "IHDR", 4) != 0)
        return "is a PNG whose first chunk is not its header (IHDR)";
      first = false;
      if (std::memcmp(type, "IDAT", 4) == 0) return len > 0 ? "" : "is a PNG with empty data";
      if (at + 12 + len > n)
        return make_string("is a PNG whose chunk at byte ", at, " runs past the end of the "
                           "file (", n, " bytes) before its image data");
      if (std::memcmp(type, "IEND", 4) == 0) break;
      at += 12 + len;
    }
    return "is a PNG with no image data (IDAT)";
  }
  auto starts = [&](const char *magic, int64_t len, int64_t offset = 0) {
    return n >= offset + len && std::memcmp(p + offset, magic, len) == 0;
  };
  if (starts("\x00\x00\x00\x0cjP  ", 8) || starts("\xff\x4f\xff\x51", 4) ||  // JPEG 2000
      starts("II*\x00", 4) || starts("MM\x00*", 4) || starts("BM", 2) ||
      (n >= 2 && p[0] == 'P' && p[1] >= '1' && p[1] <= '6') ||               // PNM
      (starts("RIFF", 4) && starts("WEBP", 4, 8)))
    return "";
  std::string head;
  for (int64_t k = 0; k < n && k < 8; k++) head += (k ? " " : "") + Byte(p[k]);
  return "is not an image format DALI decodes (JPEG, PNG, JPEG 2000, TIFF, BMP, PNM, WebP): it "
         "starts with bytes " + head;
}

}  // namespace

class ImageCheck : public StatelessOperator<CPUBackend> {
 public:
  explicit ImageCheck(const OpSpec &spec)
      : StatelessOperator<CPUBackend>(spec), label_maps_(spec.GetArgument<bool>("label_maps")) {}

 protected:
  bool SetupImpl(std::vector<OutputDesc> &, const Workspace &ws) override {
    const auto &in = ws.Input<CPUBackend>(0);
    DALI_ENFORCE(in.type() == DALI_UINT8,
                 make_string("msda.image_check: the encoded images must be uint8 (as a reader "
                             "gives them); got ", in.type(), "."));
    for (int i = 0; i < in.num_samples(); i++) {
      const uint8_t *p = in.tensor<uint8_t>(i);
      const int64_t n = volume(in.tensor_shape(i));
      const std::string why = StreamProblem(p, n);
      const std::string &src = in.GetMeta(i).GetSourceInfo();
      const std::string name = src.empty() ? "of sample " + std::to_string(i) : src;
      if (!why.empty())
        DALI_FAIL(make_string("msda.image_check: the ", label_maps_ ? "label map " : "image ",
                              name, " ", why, ": it cannot be decoded."));
      if (label_maps_) {  // what the header says of a label map (msda.LabelMap's rules)
        const std::string form = LabelMapFormProblem(ReadPngInfo(p, n));
        if (!form.empty())
          DALI_FAIL(make_string("msda.image_check: the label map ", name, " ", form));
      }
    }
    return false;  // outputs share the inputs' memory (RunImpl)
  }

  void RunImpl(Workspace &ws) override {
    ws.Output<CPUBackend>(0).ShareData(ws.Input<CPUBackend>(0));
  }

 private:
  bool label_maps_;
};

}  // namespace msda

DALI_SCHEMA(msda__ImageCheck)
  .DocStr(R"code(Passes encoded images through after reading their structure (no decoding): a
file no decoder can make an image of (empty, a JPEG with only headers or no frame header, a PNG
without image data, a format DALI does not decode) stops the pipeline with an error naming the
file (the reader's source info) and the rule.

Example::

    jpegs, labels = fn.readers.file(file_root=root)
    images = fn.decoders.image(fn.msda.image_check(jpegs), device="mixed")
)code")
  .NumInput(1)
  .NumOutput(1)
  .PassThrough({{0, 0}})
  .InputDox(0, "encoded", "TensorList of uint8 on the CPU", "Encoded images, as a reader "
            "gives them.")
  .AddOptionalArg("label_maps", R"code(The images are label maps: also refuse what their header
says cannot hold class indices (RGB, RGBA, grey-and-alpha or 16-bit PNGs, JPEGs), as
``fn.msda.label_map`` does, before a decoder sees them.)code", false);

DALI_REGISTER_OPERATOR(msda__ImageCheck, ::msda::ImageCheck, ::dali::CPU);
