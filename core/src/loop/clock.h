#pragma once
#include <chrono>

#include "hearth/host.h"

namespace hearth {

// The production clock.
class SystemClock : public Clock {
 public:
  int64_t nowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  std::chrono::steady_clock::time_point steadyNow() const override {
    return std::chrono::steady_clock::now();
  }
};

// A clock tests move by hand. Not thread-safe: advance it on the thread that reads it.
class ManualClock : public Clock {
 public:
  explicit ManualClock(int64_t startMs = 1'700'000'000'000) : nowMs_(startMs) {}
  int64_t nowMs() const override { return nowMs_; }
  std::chrono::steady_clock::time_point steadyNow() const override {
    return std::chrono::steady_clock::time_point(std::chrono::milliseconds(nowMs_));
  }
  void advance(std::chrono::milliseconds d) { nowMs_ += d.count(); }

 private:
  int64_t nowMs_;
};

}  // namespace hearth
