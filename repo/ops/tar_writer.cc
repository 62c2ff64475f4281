#include "repo/ops/tar_writer.h"

#include <array>
#include <cstring>

#include <fmt/format.h>

namespace coffer::repo {
namespace {

constexpr std::size_t kBlock = 512;

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f; });
}

std::string pax_record(const std::string& key, std::string_view value) {
  std::size_t base = key.size() + value.size() + 3;  // ' ', '=', '\n'
  std::size_t len = base + std::to_string(base).size();
  if (std::to_string(len).size() != std::to_string(base).size())
    len = base + std::to_string(len).size();
  return fmt::format("{} {}={}\n", len, key, value);
}

void put_octal(char* field, std::size_t width, std::uint64_t value) {
  std::string s = fmt::format("{:0{}o}", value, width - 1);
  if (s.size() > width - 1)
    s = std::string(width - 1, '7');
  std::memcpy(field, s.data(), s.size());
}

char type_flag(NodeType t) {
  switch (t) {
    case NodeType::kDir:
      return '5';
    case NodeType::kSymlink:
      return '2';
    case NodeType::kCharDev:
      return '3';
    case NodeType::kDev:
      return '4';
    case NodeType::kFifo:
      return '6';
    default:
      return '0';
  }
}

unsigned dev_major(std::uint64_t d) {
  return static_cast<unsigned>(((d >> 32) & 0xfffff000) | ((d >> 8) & 0xfff));
}
unsigned dev_minor(std::uint64_t d) {
  return static_cast<unsigned>(((d >> 12) & 0xffffff00) | (d & 0xff));
}

// Seconds since the epoch with 9 fraction digits; negative times count down from the
// epoch ("-1.5" is 1.5 s before it).
std::string pax_time(const GoTime& t) {
  if (t.unix_seconds >= 0 || t.nanos == 0)
    return fmt::format("{}.{:09}", t.unix_seconds, t.nanos);
  return fmt::format("-{}.{:09}", -(t.unix_seconds + 1), 1000000000 - t.nanos);
}

}  // namespace

Result<void> TarWriter::write_pax(const std::string& name, const std::string& records) {
  Node dummy;
  COFFER_TRY(
      write_block_header("PaxHeaders/" + name.substr(0, 80), 'x', records.size(), dummy, ""));
  COFFER_TRY(write_data(as_bytes(records)));
  return end_file();
}

Result<void> TarWriter::write_header(const std::string& name, const Node& node,
                                     const std::string& hardlink_target) {
  std::string tar_name = name;
  if (node.type == NodeType::kDir && (tar_name.empty() || tar_name.back() != '/'))
    tar_name += '/';
  const std::string& link = hardlink_target.empty() ? node.linktarget : hardlink_target;
  std::uint64_t size = node.type == NodeType::kFile && hardlink_target.empty() ? node.size : 0;
  std::string pax;
  if (tar_name.size() > 100 || !is_ascii(tar_name))
    pax += pax_record("path", tar_name);
  if (link.size() > 100 || !is_ascii(link))
    pax += pax_record("linkpath", link);
  if (size >= 077777777777ULL)
    pax += pax_record("size", std::to_string(size));
  if (node.uid > 07777777)
    pax += pax_record("uid", std::to_string(node.uid));
  if (node.gid > 07777777)
    pax += pax_record("gid", std::to_string(node.gid));
  if (node.mtime.nanos != 0 || node.mtime.unix_seconds < 0) {
    pax += pax_record("mtime", pax_time(node.mtime));
  }
  if (!node.user.empty() && (node.user.size() > 31 || !is_ascii(node.user)))
    pax += pax_record("uname", node.user);
  if (!node.group.empty() && (node.group.size() > 31 || !is_ascii(node.group)))
    pax += pax_record("gname", node.group);
  for (const auto& x : node.xattrs) pax += pax_record("SCHILY.xattr." + x.name, as_chars(x.value));
  if (!pax.empty())
    COFFER_TRY(write_pax(tar_name, pax));
  char type = hardlink_target.empty() ? type_flag(node.type) : '1';
  return write_block_header(tar_name, type, size, node, link);
}

Result<void> TarWriter::write_block_header(const std::string& name, char type, std::uint64_t size,
                                           const Node& node, const std::string& link) {
  std::array<char, kBlock> h{};
  std::memcpy(h.data(), name.data(), std::min<std::size_t>(name.size(), 100));
  put_octal(h.data() + 100, 8, node.unix_mode() & 07777);
  put_octal(h.data() + 108, 8, node.uid);
  put_octal(h.data() + 116, 8, node.gid);
  put_octal(h.data() + 124, 12, size);
  put_octal(h.data() + 136, 12,
            static_cast<std::uint64_t>(std::max<std::int64_t>(0, node.mtime.unix_seconds)));
  h[156] = type;
  std::memcpy(h.data() + 157, link.data(), std::min<std::size_t>(link.size(), 100));
  std::memcpy(h.data() + 257,
              "ustar\0"
              "00",
              8);
  std::memcpy(h.data() + 265, node.user.data(), std::min<std::size_t>(node.user.size(), 31));
  std::memcpy(h.data() + 297, node.group.data(), std::min<std::size_t>(node.group.size(), 31));
  if (type == '3' || type == '4') {
    put_octal(h.data() + 329, 8, dev_major(node.device));
    put_octal(h.data() + 337, 8, dev_minor(node.device));
  }
  std::memset(h.data() + 148, ' ', 8);
  unsigned sum = 0;
  for (char c : h) sum += static_cast<unsigned char>(c);
  std::string chk = fmt::format("{:06o}", sum);
  std::memcpy(h.data() + 148, chk.data(), 6);
  h[154] = '\0';
  written_in_file_ = 0;
  return sink_(ByteSpan(reinterpret_cast<const std::byte*>(h.data()), h.size()));
}

Result<void> TarWriter::write_data(ByteSpan data) {
  written_in_file_ += data.size();
  return sink_(data);
}

Result<void> TarWriter::end_file() {
  std::size_t pad = (kBlock - written_in_file_ % kBlock) % kBlock;
  written_in_file_ = 0;
  if (pad == 0)
    return {};
  static const std::array<std::byte, kBlock> kZeros{};
  return sink_(ByteSpan(kZeros.data(), pad));
}

Result<void> TarWriter::finish() {
  static const std::array<std::byte, 2 * kBlock> kZeros{};
  return sink_(ByteSpan(kZeros.data(), kZeros.size()));
}

}  // namespace coffer::repo
