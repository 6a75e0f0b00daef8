#pragma once
// Capped exponential back-off, optionally with jitter. Header-only, no dependencies beyond the
// standard library, so the core and any plugin use the same one.
//
// The n-th consecutive failure (n = 1, 2, ...) has the ceiling base(n) = min(max, min * 2^(n-1)).
// Without jitter the delay is base(n): min, 2·min, 4·min, ... max (the control plane's broker
// connection). With equal jitter the first half of base(n) is fixed and the second half random:
// a fleet of hubs that lost the same endpoint at the same moment spreads its reconnects out,
// and none retries sooner than base(n) / 2 (the cloud bridge, docs/cloud-bridge.md).
// reset() after a successful connection starts again at min.
//
// Pure and deterministic for a given seed (tests pass one; callers seed from
// std::random_device). Not thread-safe; use it from one thread (the hub loop).

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace hearth::util {

class Backoff {
 public:
  enum class Jitter { kNone, kEqual };

  // min is at least 1 ms and max at least min.
  Backoff(std::chrono::milliseconds min, std::chrono::milliseconds max, uint64_t seed,
          Jitter jitter = Jitter::kEqual)
      : min_(std::max(min, std::chrono::milliseconds(1))),
        max_(std::max(max, min_)),
        jitter_(jitter),
        rng_(seed) {}

  // The delay before the next attempt; each call counts one more failure.
  std::chrono::milliseconds next() {
    const int64_t base = ceiling().count();
    ++failures_;
    if (jitter_ == Jitter::kNone) return std::chrono::milliseconds(base);
    const int64_t half = base / 2;
    std::uniform_int_distribution<int64_t> jitter(0, base - half);
    return std::chrono::milliseconds(half + jitter(rng_));
  }

  void reset() { failures_ = 0; }

  // Consecutive failures so far.
  uint32_t failures() const { return failures_; }

  // base(n) for the next call, without jitter (for tests and status).
  std::chrono::milliseconds ceiling() const {
    // Doubling stops at max_, so the product cannot overflow.
    int64_t base = min_.count();
    for (uint32_t i = 0; i < failures_ && base < max_.count(); ++i) base *= 2;
    return std::chrono::milliseconds(std::min(base, max_.count()));
  }

 private:
  std::chrono::milliseconds min_;
  std::chrono::milliseconds max_;
  Jitter jitter_;
  uint32_t failures_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace hearth::util
