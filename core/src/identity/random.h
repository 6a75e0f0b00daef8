#pragma once
// Cryptographically random tokens (getrandom(2)); used for openIds, keys and provisioning
// tokens.

#include <Poco/DigestEngine.h>
#include <sys/random.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace hearth {

// `bytes` random bytes as lowercase hex (2 * bytes characters).
inline std::string randomHex(size_t bytes) {
  std::vector<unsigned char> buf(bytes);
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = getrandom(buf.data() + got, bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      // No entropy source is a broken host, not a recoverable request error.
      throw std::runtime_error("getrandom failed");
    }
    got += static_cast<size_t>(n);
  }
  return Poco::DigestEngine::digestToHex(buf);
}

}  // namespace hearth
