#pragma once
// Capped exponential reconnect backoff with jitter.
//
// The n-th consecutive failure waits base(n) = min(max, min * 2^n), of which the first half is
// fixed and the second half random ("equal jitter"): a fleet of hubs that lost the same cloud
// endpoint at the same moment spreads its reconnects out, and no hub retries sooner than
// base(n) / 2. reset() after a successful connection starts again at min.
//
// Pure and deterministic for a given seed (tests pass one; the plugin seeds from
// std::random_device).

#include <chrono>
#include <cstdint>
#include <random>

namespace hearth::cloud_bridge {

class Backoff {
 public:
  Backoff(std::chrono::milliseconds min, std::chrono::milliseconds max, uint64_t seed);

  // The delay before the next attempt; each call counts one more failure.
  std::chrono::milliseconds next();
  void reset() { failures_ = 0; }
  // Consecutive failures so far.
  uint32_t failures() const { return failures_; }
  // base(n) for the next call, without jitter (for tests and status).
  std::chrono::milliseconds ceiling() const;

 private:
  std::chrono::milliseconds min_;
  std::chrono::milliseconds max_;
  uint32_t failures_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace hearth::cloud_bridge
