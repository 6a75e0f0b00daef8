#include "connection_registry.h"

#include <sys/socket.h>
#include <unistd.h>

namespace hearth::web {

ConnectionRegistry::ConnectionRegistry() : thread_([this] { run(); }) {}

ConnectionRegistry::~ConnectionRegistry() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

uint64_t ConnectionRegistry::add(int fd, Clock::time_point deadline) {
  std::lock_guard<std::mutex> lock(mutex_);
  uint64_t id = nextId_++;
  // A descriptor of our own for the same socket: shutdown(2) acts on the socket, and ours
  // cannot be closed and reused under us while the owner's is.
  entries_[id] = Entry{::dup(fd), deadline};
  cv_.notify_all();
  return id;
}

void ConnectionRegistry::clearDeadline(uint64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(id);
  if (it != entries_.end()) it->second.deadline = Clock::time_point::max();
}

void ConnectionRegistry::setDeadline(uint64_t id, Clock::time_point deadline) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  it->second.deadline = deadline;
  cv_.notify_all();
}

bool ConnectionRegistry::timedOut(uint64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(id);
  return it != entries_.end() && it->second.timedOut;
}

void ConnectionRegistry::remove(uint64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  if (it->second.fd >= 0) ::close(it->second.fd);
  entries_.erase(it);
}

void ConnectionRegistry::shutdownAll() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [id, e] : entries_) {
    if (e.fd >= 0) ::shutdown(e.fd, SHUT_RDWR);
  }
}

size_t ConnectionRegistry::size() {
  std::lock_guard<std::mutex> lock(mutex_);
  return entries_.size();
}

void ConnectionRegistry::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    auto now = Clock::now();
    auto next = Clock::time_point::max();
    for (auto& [id, e] : entries_) {
      if (e.timedOut) continue;
      if (e.deadline <= now) {
        e.timedOut = true;
        if (e.fd >= 0) ::shutdown(e.fd, SHUT_RDWR);
      } else if (e.deadline < next) {
        next = e.deadline;
      }
    }
    if (next == Clock::time_point::max()) {
      cv_.wait(lock);
    } else {
      cv_.wait_until(lock, next);
    }
  }
}

ConnectionScope*& ConnectionScope::current() {
  static thread_local ConnectionScope* scope = nullptr;
  return scope;
}

}  // namespace hearth::web
