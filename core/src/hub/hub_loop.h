#pragma once
// The hub loop: the one thread that owns all core state. Other threads hand work to it with
// post(); timers fire on it. Time comes from an injected Clock so tests can drive timers.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "hearth/host.h"

namespace hearth {

class HubLoop {
 public:
  explicit HubLoop(const Clock& clock) : clock_(clock) {}

  // Thread-safe. Work posted after stop() is dropped.
  void post(std::function<void()> fn);

  // Hub loop only. Fires fn once, no earlier than delay from now.
  TimerId startTimer(std::chrono::milliseconds delay, std::function<void()> fn);
  void cancelTimer(TimerId id);

  // Runs until stop(); the calling thread becomes the hub loop.
  void run();
  // Runs what is due now (posted work and expired timers) and returns; for tests.
  void runOnce();
  // Thread-safe.
  void stop();

  bool isHubThread() const { return std::this_thread::get_id() == hubThread_; }
  size_t pendingTimers() const { return timers_.size(); }

 private:
  using Deadline = std::chrono::steady_clock::time_point;
  bool runDue();

  const Clock& clock_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::thread::id hubThread_ = std::this_thread::get_id();

  // Hub-loop-only state.
  TimerId nextTimer_ = 1;
  std::map<std::pair<Deadline, TimerId>, std::function<void()>> timers_;
  std::map<TimerId, Deadline> timerDeadlines_;
};

}  // namespace hearth
