// What a label map's encoded file says about its pixel values: the PNG header (bit depth, colour
// type) and palette, read from the bytes the reader gave (no decoding). Free of DALI, so that
// the rules of msda.LabelMap (label_map.cc) read as plain code.

#ifndef DALI_MSDA_CSRC_LABEL_MAP_PNG_INFO_H_
#define DALI_MSDA_CSRC_LABEL_MAP_PNG_INFO_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace msda {

enum class MapFormat { kPng, kJpeg, kOther };

/// PNG colour types (IHDR byte 9).
enum PngColor : int { kGrey = 0, kRgb = 2, kPalette = 3, kGreyAlpha = 4, kRgba = 6 };

struct PngInfo {
  MapFormat format = MapFormat::kOther;
  int bit_depth = 0, color_type = -1;  // PNG only
  std::vector<uint32_t> palette;       // PLTE entries as 0xRRGGBB, in index order
  bool ok = false;                     // a PNG whose IHDR was read
};

inline uint32_t BigEndian32(const uint8_t *p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

/// The header and palette of an encoded map (`n` bytes at `p`); chunks past PLTE are not read.
inline PngInfo ReadPngInfo(const uint8_t *p, int64_t n) {
  PngInfo info;
  static const uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) {
    info.format = MapFormat::kJpeg;
    return info;
  }
  if (n < 8 || std::memcmp(p, kSignature, 8) != 0) return info;
  info.format = MapFormat::kPng;
  int64_t at = 8;
  while (at + 8 <= n) {
    const int64_t len = BigEndian32(p + at);
    const uint8_t *type = p + at + 4, *data = p + at + 8;
    if (len < 0 || at + 8 + len > n) break;
    if (std::memcmp(type, "IHDR", 4) == 0 && len >= 13) {
      info.bit_depth = data[8];
      info.color_type = data[9];
      info.ok = true;
    } else if (std::memcmp(type, "PLTE", 4) == 0) {
      for (int64_t k = 0; k + 3 <= len; k += 3)
        info.palette.push_back((uint32_t(data[k]) << 16) | (uint32_t(data[k + 1]) << 8) |
                               data[k + 2]);
    } else if (std::memcmp(type, "IDAT", 4) == 0 || std::memcmp(type, "IEND", 4) == 0) {
      break;  // the palette, if any, came before the image data
    }
    at += 12 + len;  // length, type, data, CRC
  }
  return info;
}

/// A palette's colours -> indices: sorted (colour, index) pairs, a colour that two indices share
/// marked ambiguous (its pixels cannot say which index they were).
struct PaletteLookup {
  static constexpr int kAmbiguous = -2, kAbsent = -1;
  std::vector<uint64_t> sorted;  // colour << 16 | index, with duplicates removed
  std::vector<uint32_t> ambiguous;

  explicit PaletteLookup(const std::vector<uint32_t> &palette) {
    for (size_t i = 0; i < palette.size(); i++)
      sorted.push_back((uint64_t(palette[i]) << 16) | i);
    std::sort(sorted.begin(), sorted.end());
    std::vector<uint64_t> unique;
    for (size_t k = 0; k < sorted.size(); k++) {
      const uint32_t c = static_cast<uint32_t>(sorted[k] >> 16);
      if (!unique.empty() && (unique.back() >> 16) == c) {
        if (ambiguous.empty() || ambiguous.back() != c) ambiguous.push_back(c);
        continue;
      }
      unique.push_back(sorted[k]);
    }
    sorted.swap(unique);
  }

  /// The index of colour `rgb` (0xRRGGBB), kAmbiguous or kAbsent.
  int Find(uint32_t rgb) const {
    if (std::binary_search(ambiguous.begin(), ambiguous.end(), rgb)) return kAmbiguous;
    auto it = std::lower_bound(sorted.begin(), sorted.end(), uint64_t(rgb) << 16);
    if (it == sorted.end() || (*it >> 16) != rgb) return kAbsent;
    return static_cast<int>(*it & 0xffff);
  }

  /// The indices that share colour `rgb` (for an error).
  std::vector<int> Sharing(const std::vector<uint32_t> &palette, uint32_t rgb) const {
    std::vector<int> out;
    for (size_t i = 0; i < palette.size(); i++)
      if (palette[i] == rgb) out.push_back(static_cast<int>(i));
    return out;
  }
};

/// The way out a refusal of a label map points to.
constexpr const char *kConvertMasks =
    "; `python -m dali_msda.pipelines.scan --segmentation DATA --convert-masks FOLDER` writes "
    "them as index PNGs";

/// Why a label map's encoded form cannot hold class indices, or "" when it can (a greyscale PNG
/// of at most 8 bits, a palette PNG, or another format, whose pixels then must be grey): the
/// part of msda.LabelMap's rules that the file's header decides, which msda.ImageCheck applies
/// before decoding (`label_maps=True`).
inline std::string LabelMapFormProblem(const PngInfo &info) {
  const std::string convert = kConvertMasks;
  if (info.format == MapFormat::kJpeg)
    return "is a JPEG: lossy compression puts values between the classes at their edges, so a "
           "label map must be lossless (a single-channel or palette PNG)" + convert +
           " from your original masks.";
  if (info.format != MapFormat::kPng || !info.ok) return "";
  if (info.color_type == kGrey && info.bit_depth > 8)
    return "is a " + std::to_string(info.bit_depth) + "-bit greyscale PNG: decoders scale it to "
           "8 bits (value / 257), so its values are not kept" + convert +
           " (values above 255 cannot be uint8 labels).";
  if (info.color_type == kGrey || info.color_type == kPalette) return "";
  if (info.color_type == kGreyAlpha)
    return "is a grey-and-alpha PNG (colour type 4): a label map has one channel of class "
           "indices (a single-channel or palette PNG), and decoders drop the alpha silently" +
           convert + " (their grey channel).";
  const std::string what = info.color_type == kRgb    ? "an RGB"
                           : info.color_type == kRgba ? "an RGBA"
                                                      : "an unknown colour type's";
  return "is " + what + " PNG (colour type " + std::to_string(info.color_type) +
         "): its values are colours, not class indices; a label map is a single-channel PNG of "
         "indices or a palette PNG" + convert + " (--palette voc maps VOC's colours to their "
         "classes).";
}

}  // namespace msda

#endif  // DALI_MSDA_CSRC_LABEL_MAP_PNG_INFO_H_
