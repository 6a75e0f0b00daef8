#pragma once
// The hub loop: the one thread that owns all core state. Other threads hand work to it with
// post(); timers fire on it; and the control plane's socket is serviced on it directly (an
// IoSource), so a request and its response cross no thread on their way through the hub.
// Time comes from an injected Clock so tests can drive timers.

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "hearth/host.h"
#include "hearth/util/deadline_queue.h"

namespace hearth {

// A socket serviced by the hub loop (the MQTT connection). All calls are on the hub loop.
class IoSource {
 public:
  virtual ~IoSource() = default;
  virtual int ioFd() const = 0;  // < 0 while there is no socket
  virtual bool ioWantWrite() const = 0;
  virtual void ioReadable() = 0;
  virtual void ioWritable() = 0;
};

class HubLoop {
 public:
  explicit HubLoop(const Clock& clock);
  ~HubLoop();
  HubLoop(const HubLoop&) = delete;
  HubLoop& operator=(const HubLoop&) = delete;

  // Thread-safe. Work posted after stop() is dropped.
  void post(std::function<void()> fn);
  // Runs fn now if called on the hub loop, else posts it.
  void dispatch(std::function<void()> fn);

  // Hub loop only. Fires fn once, no earlier than delay from now.
  TimerId startTimer(std::chrono::milliseconds delay, std::function<void()> fn);
  void cancelTimer(TimerId id);

  // Hub loop only; nullptr to detach. The source must outlive its attachment.
  void setIoSource(IoSource* source) { io_ = source; }

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
  void wake();

  const Clock& clock_;
  int wakeFd_ = -1;  // eventfd: post() and stop() wake a poll() in progress
  std::mutex mutex_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::thread::id hubThread_ = std::this_thread::get_id();

  // Hub-loop-only state.
  IoSource* io_ = nullptr;
  TimerId nextTimer_ = 1;
  util::DeadlineQueue<TimerId, Deadline> timers_;  // due in (deadline, id) order
  std::unordered_map<TimerId, std::function<void()>> timerFns_;
};

}  // namespace hearth
