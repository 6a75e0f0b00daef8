#include "binding/rate_limit.h"

#include <string>
#include <utility>

namespace hearth::binding {

bool countsAsFailedScan(ErrorCode code) {
  return code == ErrorCode::kTokenInvalid || code == ErrorCode::kTokenExpired ||
         code == ErrorCode::kTokenUsed;
}

ScanRateLimiter::ScanRateLimiter(RateLimitConfig config) : config_(config) {}

Status ScanRateLimiter::check(const std::string& userId, int64_t nowMs) const {
  auto it = users_.find(userId);
  if (it != users_.end() && nowMs < it->second.blockedUntilMs) {
    return Status::error(ErrorCode::kRateLimited, "too many failed scans; retry after " +
                                                      std::to_string(it->second.blockedUntilMs));
  }
  return Status::ok();
}

void ScanRateLimiter::recordFailure(const std::string& userId, int64_t nowMs) {
  UserState& state = users_[userId];
  while (!state.failures.empty() && state.failures.front() <= nowMs - config_.windowMs) {
    state.failures.pop_front();
  }
  state.failures.push_back(nowMs);
  if (static_cast<int>(state.failures.size()) >= config_.maxFailures) {
    state.blockedUntilMs = nowMs + config_.blockMs;
    // A fresh count after the block: otherwise the first failure after it would re-block at once.
    state.failures.clear();
  }
}

void ScanRateLimiter::prune(int64_t nowMs) {
  for (auto it = users_.begin(); it != users_.end();) {
    UserState& state = it->second;
    while (!state.failures.empty() && state.failures.front() <= nowMs - config_.windowMs) {
      state.failures.pop_front();
    }
    if (state.failures.empty() && nowMs >= state.blockedUntilMs) {
      it = users_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace hearth::binding
