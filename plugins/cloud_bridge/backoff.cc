#include "backoff.h"

#include <algorithm>

namespace hearth::cloud_bridge {

Backoff::Backoff(std::chrono::milliseconds min, std::chrono::milliseconds max, uint64_t seed)
    : min_(std::max(min, std::chrono::milliseconds(1))),
      max_(std::max(max, std::max(min, std::chrono::milliseconds(1)))),
      rng_(seed) {}

std::chrono::milliseconds Backoff::ceiling() const {
  // Doubling stops at max_, so neither the shift nor the product can overflow.
  int64_t base = min_.count();
  for (uint32_t i = 0; i < failures_ && base < max_.count(); ++i) base *= 2;
  return std::chrono::milliseconds(std::min(base, max_.count()));
}

std::chrono::milliseconds Backoff::next() {
  int64_t base = ceiling().count();
  ++failures_;
  int64_t half = base / 2;
  std::uniform_int_distribution<int64_t> jitter(0, base - half);
  return std::chrono::milliseconds(half + jitter(rng_));
}

}  // namespace hearth::cloud_bridge
