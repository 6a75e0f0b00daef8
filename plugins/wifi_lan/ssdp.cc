#include "ssdp.h"

#include <algorithm>
#include <cctype>
#include <vector>

namespace hearth::lan {
namespace {

constexpr size_t kMaxUuid = 59;  // "ssdp-" + uuid stays within 64 characters
constexpr size_t kMaxKind = 128;
constexpr size_t kMaxServer = 128;
constexpr size_t kMaxLocation = 256;
constexpr int kMaxAgeCap = 86400;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

bool printable(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return c >= 0x20 && c != 0x7f; });
}

// Truncates to at most n bytes without splitting a UTF-8 sequence.
std::string clip(std::string_view s, size_t n) {
  if (s.size() <= n) return std::string(s);
  size_t cut = n;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return std::string(s.substr(0, cut));
}

bool validUuid(std::string_view u) {
  if (u.empty() || u.size() > kMaxUuid) return false;
  return std::all_of(u.begin(), u.end(),
                     [](unsigned char c) { return std::isalnum(c) != 0 || c == '-'; });
}

}  // namespace

SsdpKind parseSsdp(std::string_view datagram, SsdpSighting* out) {
  if (datagram.empty() || datagram.size() > kMaxSsdpBytes) return SsdpKind::kInvalid;
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos < datagram.size()) {
    size_t nl = datagram.find('\n', pos);
    if (nl == std::string_view::npos) nl = datagram.size();
    lines.push_back(trim(datagram.substr(pos, nl - pos)));
    pos = nl + 1;
  }
  if (lines.empty()) return SsdpKind::kInvalid;
  std::string start = lower(lines[0]);
  bool notify = start == "notify * http/1.1";
  bool answer = start.rfind("http/1.1 200", 0) == 0;
  if (start == "m-search * http/1.1") return SsdpKind::kIgnored;
  if (!notify && !answer) return SsdpKind::kInvalid;

  SsdpSighting s;
  std::string usn, nts;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    if (line.empty()) break;  // end of headers
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return SsdpKind::kInvalid;
    std::string name = lower(trim(line.substr(0, colon)));
    std::string_view value = trim(line.substr(colon + 1));
    if (!printable(value)) return SsdpKind::kInvalid;
    if (name == "usn") {
      usn = std::string(value);
    } else if ((notify && name == "nt") || (answer && name == "st")) {
      if (value.empty() || value.size() > kMaxKind) return SsdpKind::kInvalid;
      s.kind = std::string(value);
    } else if (name == "nts") {
      nts = lower(value);
    } else if (name == "server") {
      s.server = clip(value, kMaxServer);
    } else if (name == "location") {
      s.location = clip(value, kMaxLocation);
    } else if (name == "cache-control") {
      std::string v = lower(value);
      size_t at = v.find("max-age");
      if (at != std::string::npos) {
        size_t eq = v.find('=', at);
        if (eq == std::string::npos) return SsdpKind::kInvalid;
        std::string_view digits = trim(std::string_view(v).substr(eq + 1));
        long age = 0;
        size_t n = 0;
        while (n < digits.size() && n < 9 && std::isdigit(static_cast<unsigned char>(digits[n]))) {
          age = age * 10 + (digits[n] - '0');
          ++n;
        }
        if (n == 0) return SsdpKind::kInvalid;
        s.maxAgeSec = static_cast<int>(std::clamp<long>(age, 1, kMaxAgeCap));
      }
    }
  }
  if (notify) {
    if (nts == "ssdp:byebye") {
      s.byebye = true;
    } else if (nts != "ssdp:alive" && nts != "ssdp:update") {
      return SsdpKind::kInvalid;
    }
  }
  if (usn.rfind("uuid:", 0) != 0) return SsdpKind::kInvalid;
  std::string_view uuid = std::string_view(usn).substr(5);
  size_t sep = uuid.find("::");
  if (sep != std::string_view::npos) uuid = uuid.substr(0, sep);
  if (!validUuid(uuid)) return SsdpKind::kInvalid;
  s.uuid = std::string(uuid);
  if (s.kind.empty()) return SsdpKind::kInvalid;
  *out = std::move(s);
  return SsdpKind::kSighting;
}

std::string ssdpDeviceId(const SsdpSighting& s) { return "ssdp-" + s.uuid; }

std::string ssdpSearchRequest(int mxSec) {
  return "M-SEARCH * HTTP/1.1\r\n"
         "HOST: 239.255.255.250:1900\r\n"
         "MAN: \"ssdp:discover\"\r\n"
         "MX: " +
         std::to_string(mxSec) +
         "\r\n"
         "ST: ssdp:all\r\n"
         "USER-AGENT: Linux UPnP/1.1 hearth/1\r\n"
         "\r\n";
}

}  // namespace hearth::lan
