#include "door_guard.h"

namespace hearth::web {

// Bounds the lockout table: an attacker cycling through addresses cannot grow it without
// limit (the oldest entries without a lockout go first).
constexpr size_t kMaxTrackedAddresses = 4096;

bool DoorGuard::enter(const std::string& address) {
  if (lockedOut(address)) {
    counters_.refusedLocked++;
    return false;
  }
  int64_t now = inside_.fetch_add(1) + 1;
  if (now > maxConnections_) {
    inside_.fetch_sub(1);
    counters_.refusedFull++;
    return false;
  }
  counters_.accepted++;
  return true;
}

void DoorGuard::leave() { inside_.fetch_sub(1); }

bool DoorGuard::lockedLocked(const std::string& address, Clock::time_point now) {
  auto it = failures_.find(address);
  return it != failures_.end() && it->second.lockedUntil > now;
}

bool DoorGuard::lockedOut(const std::string& address) {
  std::lock_guard<std::mutex> lock(mutex_);
  return lockedLocked(address, Clock::now());
}

void DoorGuard::prune(Clock::time_point now) {
  for (auto it = failures_.begin(); it != failures_.end();) {
    auto& f = it->second;
    while (!f.times.empty() && now - f.times.front() > failWindow_) f.times.pop_front();
    if (f.times.empty() && f.lockedUntil <= now) {
      it = failures_.erase(it);
    } else {
      ++it;
    }
  }
  lastPrune_ = now;
}

void DoorGuard::loginResult(const std::string& address, bool ok) {
  if (ok) {
    counters_.loginsOk++;
    return;
  }
  counters_.loginsFailed++;
  std::lock_guard<std::mutex> lock(mutex_);
  auto now = Clock::now();
  if (now - lastPrune_ > std::chrono::seconds(60) || failures_.size() >= kMaxTrackedAddresses) {
    prune(now);
  }
  if (failures_.size() >= kMaxTrackedAddresses && failures_.count(address) == 0) {
    // Still full of live entries: forget the one with the fewest failures that is not locked.
    auto victim = failures_.end();
    for (auto it = failures_.begin(); it != failures_.end(); ++it) {
      if (it->second.lockedUntil > now) continue;
      if (victim == failures_.end() || it->second.times.size() < victim->second.times.size()) {
        victim = it;
      }
    }
    if (victim != failures_.end()) failures_.erase(victim);
  }
  auto& f = failures_[address];
  while (!f.times.empty() && now - f.times.front() > failWindow_) f.times.pop_front();
  f.times.push_back(now);
  if (static_cast<int>(f.times.size()) >= maxFailedLogins_ && f.lockedUntil <= now) {
    f.lockedUntil = now + lockoutFor_;
    f.times.clear();
    counters_.lockouts++;
  }
}

int64_t DoorGuard::lockedAddresses() {
  std::lock_guard<std::mutex> lock(mutex_);
  auto now = Clock::now();
  int64_t n = 0;
  for (const auto& [address, f] : failures_) {
    if (f.lockedUntil > now) ++n;
  }
  return n;
}

}  // namespace hearth::web
