#pragma once
// SSDP (UPnP discovery) messages as the wifi_lan plugin reads them: NOTIFY (alive/byebye) and
// answers to its M-SEARCH. Other UPnP devices on the LAN are listed in the hub's inventory as
// discovered but never bindable. Pure functions, reentrant.

#include <string>
#include <string_view>

namespace hearth::lan {

inline constexpr const char* kSsdpGroup = "239.255.255.250";
inline constexpr unsigned short kSsdpPort = 1900;
inline constexpr size_t kMaxSsdpBytes = 2048;

struct SsdpSighting {
  std::string uuid;      // from USN "uuid:<uuid>[::<type>]"
  std::string kind;      // NT (NOTIFY) or ST (answer), e.g. urn:schemas-upnp-org:device:TV:1
  std::string server;    // SERVER header
  std::string location;  // LOCATION header
  int maxAgeSec = 1800;  // CACHE-CONTROL max-age (RFC default when absent: the UDA's 1800)
  bool byebye = false;   // NOTIFY with NTS: ssdp:byebye
};

enum class SsdpKind { kSighting, kIgnored, kInvalid };

// kSighting: *out is filled. kIgnored: a well-formed message that is not about a device
// (M-SEARCH from another control point). kInvalid: anything else.
SsdpKind parseSsdp(std::string_view datagram, SsdpSighting* out);

// The hub's device id for an SSDP device: "ssdp-" + uuid (an identifier per SPEC §2).
std::string ssdpDeviceId(const SsdpSighting& s);

// An M-SEARCH for all devices (ssdp:all) with the given MX (seconds).
std::string ssdpSearchRequest(int mxSec);

}  // namespace hearth::lan
