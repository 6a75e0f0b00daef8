#include "hub/hub_loop.h"

namespace hearth {

void HubLoop::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    queue_.push_back(std::move(fn));
  }
  wake_.notify_one();
}

TimerId HubLoop::startTimer(std::chrono::milliseconds delay, std::function<void()> fn) {
  TimerId id = nextTimer_++;
  Deadline deadline = clock_.steadyNow() + delay;
  timers_.emplace(std::make_pair(deadline, id), std::move(fn));
  timerDeadlines_.emplace(id, deadline);
  // A timer that is earlier than the current wait must wake the loop; posting a no-op does it
  // without a separate signalling path.
  post([] {});
  return id;
}

void HubLoop::cancelTimer(TimerId id) {
  auto it = timerDeadlines_.find(id);
  if (it == timerDeadlines_.end()) return;
  timers_.erase(std::make_pair(it->second, id));
  timerDeadlines_.erase(it);
}

bool HubLoop::runDue() {
  bool did = false;
  std::deque<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    batch.swap(queue_);
  }
  for (auto& fn : batch) {
    fn();
    did = true;
  }
  auto now = clock_.steadyNow();
  while (!timers_.empty() && timers_.begin()->first.first <= now) {
    auto node = timers_.extract(timers_.begin());
    timerDeadlines_.erase(node.key().second);
    node.mapped()();
    did = true;
  }
  return did;
}

void HubLoop::runOnce() {
  hubThread_ = std::this_thread::get_id();
  while (runDue()) {
  }
}

void HubLoop::run() {
  hubThread_ = std::this_thread::get_id();
  for (;;) {
    runDue();
    std::unique_lock<std::mutex> lock(mutex_);
    if (stopping_) break;
    if (!queue_.empty()) continue;
    if (timers_.empty()) {
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    } else {
      // Timers are kept in clock_ time; waiting in real time is right for SystemClock, and a
      // ManualClock test drives runOnce() instead of run().
      auto wait = timers_.begin()->first.first - clock_.steadyNow();
      wake_.wait_for(lock, wait, [this] { return stopping_ || !queue_.empty(); });
    }
  }
  // Drain what was posted before stop so no hand-over is lost (e.g. a final response).
  std::deque<std::function<void()>> rest;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    rest.swap(queue_);
  }
  for (auto& fn : rest) fn();
}

void HubLoop::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
}

}  // namespace hearth
