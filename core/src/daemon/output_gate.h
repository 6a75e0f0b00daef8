#pragma once
// What the hub publishes to terminals waits for the disk only when it has to. The hub loop
// commits without waiting for the disk (Database::startBackgroundSync); an answer or event that
// tells someone about a change may only leave once that change is on disk, everything else
// goes out at once. The rule, per message:
//
//  - inside a unit of work (one request, one batch of Database::whenSynced callbacks; Unit
//    below), a message is held if that unit has committed something not yet on disk before
//    sending it — a `command` forwarded before its record is written goes at once, the answer
//    after the write waits;
//  - outside a unit (timers, posted work, answers of asynchronous calls), a message is held if
//    anything is unsynced;
//  - a message to a terminal that already has held messages waits behind them, so a
//    terminal sees its answers and events in the order the hub produced them.
//
// Held messages leave in order once the flush covering their commit has ended. Hub loop only.

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "store/database.h"

namespace hearth {

class OutputGate {
 public:
  explicit OutputGate(Database& db) : db_(db) {}

  // Publishes the message now (returns publish()'s result) or once its commit is on disk
  // (returns nullopt). terminal names the destination ("user/client", "admin") for the
  // ordering rule.
  using Publish = std::function<bool()>;
  std::optional<bool> send(const std::string& terminal, Publish publish);
  // Publishes everything held (a clean stop, after Database::syncNow()).
  void releaseAll();
  size_t held() const { return held_.size(); }
  uint64_t heldTotal() const { return heldTotal_; }

  // One unit of work: messages sent inside it depend only on its own commits.
  class Unit {
   public:
    explicit Unit(OutputGate& gate) : gate_(gate), outer_(gate.mark_) {
      gate_.mark_ = gate_.db_.committedGen();
    }
    ~Unit() { gate_.mark_ = outer_; }
    Unit(const Unit&) = delete;
    Unit& operator=(const Unit&) = delete;

   private:
    OutputGate& gate_;
    int64_t outer_;
  };

 private:
  struct Held {
    uint64_t gen;
    std::string terminal;
    Publish publish;
  };
  void release();

  Database& db_;
  int64_t mark_ = -1;  // committedGen() when the current unit began; -1 outside units
  std::deque<Held> held_;
  std::map<std::string, size_t> heldPerTerminal_;
  bool waiting_ = false;  // a whenSynced(release) is registered
  uint64_t heldTotal_ = 0;
};

}  // namespace hearth
