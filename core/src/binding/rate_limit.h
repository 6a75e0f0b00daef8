#pragma once
// Failed-scan rate limiting for scanShare (SPEC §3): 20 failed scans by one user within 15 min
// → RATE_LIMITED for 15 min. Pure: time is passed in. Lives in memory only; a restart forgets
// it, which costs an attacker one restart's worth of guesses against ≥128-bit keys.

#include <cstdint>
#include <deque>
#include <map>
#include <string>

#include "hearth/status.h"

namespace hearth::binding {

struct RateLimitConfig {
  int maxFailures = 20;               // HubConfig::maxFailedScans
  int64_t windowMs = 15 * 60 * 1000;  // HubConfig::failedScanWindow: older failures don't count
  int64_t blockMs = 15 * 60 * 1000;   // how long a user stays blocked
};

// Whether a scanShare result is a failed guess that counts against the scanner. ALREADY_BOUND
// and LIMIT_REACHED do not count: the key was genuine.
bool countsAsFailedScan(ErrorCode code);

class ScanRateLimiter {
 public:
  explicit ScanRateLimiter(RateLimitConfig config = {});

  // RATE_LIMITED while `userId` is blocked, ok otherwise. Call before looking the key up.
  Status check(const std::string& userId, int64_t nowMs) const;

  // Records one failed scan. The maxFailures-th failure within windowMs blocks the user for
  // blockMs from now (that scan itself still gets its own error; the next one RATE_LIMITED).
  void recordFailure(const std::string& userId, int64_t nowMs);

  // Forgets users with no counting failures and no running block, bounding memory.
  void prune(int64_t nowMs);

  size_t trackedUsers() const { return users_.size(); }

 private:
  struct UserState {
    std::deque<int64_t> failures;  // times of failures inside the window, oldest first
    int64_t blockedUntilMs = 0;
  };
  RateLimitConfig config_;
  std::map<std::string, UserState> users_;
};

}  // namespace hearth::binding
