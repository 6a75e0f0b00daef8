#include "loop/hub_loop.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>

namespace hearth {

HubLoop::HubLoop(const Clock& clock) : clock_(clock) {
  wakeFd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  // Without it the loop cannot be woken: a broken host, not a recoverable condition.
  if (wakeFd_ < 0) throw std::runtime_error("eventfd failed");
}

HubLoop::~HubLoop() { close(wakeFd_); }

void HubLoop::wake() {
  uint64_t one = 1;
  // A full counter (EAGAIN) still wakes the loop, so the result does not matter.
  [[maybe_unused]] ssize_t n = write(wakeFd_, &one, sizeof one);
}

void HubLoop::post(std::function<void()> fn) {
  bool wasEmpty;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    wasEmpty = queue_.empty();
    queue_.push_back(std::move(fn));
  }
  // The loop drains the whole queue at once, so only the first post after a drain must wake it;
  // and the loop itself, posting, is not in poll: it runs the queue before it polls again.
  if (wasEmpty && !isHubThread()) wake();
}

void HubLoop::dispatch(std::function<void()> fn) {
  if (isHubThread()) {
    fn();
  } else {
    post(std::move(fn));
  }
}

TimerId HubLoop::startTimer(std::chrono::milliseconds delay, std::function<void()> fn) {
  TimerId id = nextTimer_++;
  Deadline deadline = clock_.steadyNow() + delay;
  timers_.set(id, deadline);
  timerFns_.emplace(id, std::move(fn));
  return id;
}

void HubLoop::cancelTimer(TimerId id) {
  if (timers_.erase(id)) timerFns_.erase(id);
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
  while (!timers_.empty() && timers_.earliest() <= now) {
    auto node = timerFns_.extract(timers_.pop());
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
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) break;
      if (!queue_.empty()) continue;
    }
    int timeoutMs = -1;
    if (!timers_.empty()) {
      // Timers are kept in clock_ time; waiting in real time is right for SystemClock, and a
      // ManualClock test drives runOnce() instead of run().
      auto wait = timers_.earliest() - clock_.steadyNow();
      auto ms = std::chrono::ceil<std::chrono::milliseconds>(wait).count();
      timeoutMs = static_cast<int>(std::clamp<int64_t>(ms, 0, 60'000));
    }
    pollfd fds[2] = {{wakeFd_, POLLIN, 0}, {-1, 0, 0}};
    nfds_t count = 1;
    int ioFd = io_ != nullptr ? io_->ioFd() : -1;
    if (ioFd >= 0) {
      fds[1] = {ioFd, static_cast<short>(POLLIN | (io_->ioWantWrite() ? POLLOUT : 0)), 0};
      count = 2;
    }
    int n = poll(fds, count, timeoutMs);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("poll failed");  // EFAULT/EINVAL: a bug, not a runtime fault
    }
    if (fds[0].revents & POLLIN) {
      uint64_t drained;
      [[maybe_unused]] ssize_t r = read(wakeFd_, &drained, sizeof drained);
    }
    if (count == 2 && io_ != nullptr && io_->ioFd() == ioFd) {
      if (fds[1].revents & (POLLIN | POLLERR | POLLHUP)) io_->ioReadable();
      if (io_ != nullptr && io_->ioFd() == ioFd && (fds[1].revents & POLLOUT)) io_->ioWritable();
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
  wake();
}

}  // namespace hearth
