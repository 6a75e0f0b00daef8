#pragma once
// Every client connection inside the front door, so that (1) a connection that has not
// completed its TLS handshake and MQTT CONNECT by its deadline is cut off however slowly it
// dribbles bytes (a per-read timeout would let a slowloris client stay forever), and (2)
// stopping the plugin wakes every connection thread at once. Cutting off = shutdown(2) of the
// socket, which makes the owning thread's blocked read return; the owner still closes it.
// Thread-safe; one thread of its own watches the deadlines.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace hearth::web {

class ConnectionRegistry {
 public:
  using Clock = std::chrono::steady_clock;

  ConnectionRegistry();
  ~ConnectionRegistry();

  // Registers a connection's socket with a deadline; returns its id. The owner must remove()
  // it before closing the socket.
  uint64_t add(int fd, Clock::time_point deadline);
  // The connection met its deadline (CONNECT complete, or a plain HTTPS request read).
  void clearDeadline(uint64_t id);
  // A new deadline (the next request of a kept-alive HTTPS connection).
  void setDeadline(uint64_t id, Clock::time_point deadline);
  // Whether the deadline cut this connection off.
  bool timedOut(uint64_t id);
  void remove(uint64_t id);
  // Shuts every registered socket down (plugin stop).
  void shutdownAll();
  size_t size();

 private:
  struct Entry {
    int fd;
    Clock::time_point deadline;  // max() = none
    bool timedOut = false;
  };
  void run();

  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<uint64_t, Entry> entries_;
  uint64_t nextId_ = 1;
  bool stop_ = false;
  std::thread thread_;
};

// The connection the current I/O thread is serving, for the HTTP handlers Poco calls on that
// thread (they see only the request, not the TCP connection).
struct ConnectionScope {
  uint64_t id = 0;
  std::string address;  // the client's address, for the lockout
  ConnectionRegistry* registry = nullptr;
  void* ssl = nullptr;  // the connection's OpenSSL SSL, once its handshake is done (server_tls.h)
  static ConnectionScope*& current();
};

}  // namespace hearth::web
