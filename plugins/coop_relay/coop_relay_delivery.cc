// coop_relay's delivery: what goes to a terminal when it is online, within its delivery
// window, and the write-behind of commands delivered at once.
#include "coop_relay_plugin.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "coop_relay_shared.h"

namespace hearth::coop {

using namespace relay;

// ------------------------------------------------------------------------------------------
// Delivery

void CoopRelayPlugin::flush(const TerminalKey& key, int64_t reofferOlderThanMs) {
  if (!isOnline(key)) return;

  auto box = outbox_.find(key);
  if (box != outbox_.end()) {
    Batch b;
    for (const auto& [seq, e] : box->second) {
      if (ctx_.sendEvent(key.userId, key.clientId, e.event, e.dataJson) == 0) break;
      b.erase(kOutbox, seqKey(seq));
      b.apply([this, seq = seq] { eraseOutbox(seq); });
    }
    // The events are out: a failed erase only means they are sent again after a restart.
    (void)commit(b, /*applyOnFailure=*/true);  // commit() logs a failure
  }

  for (auto& [id, r] : requests_) {
    if (r.to.key() != key) continue;
    if (r.delivered && reofferOlderThanMs != 0) continue;  // a new session: show it again
    r.delivered =
        ctx_.sendEvent(key.userId, key.clientId, kEvAccessRequest, accessRequestEventJson(r)) > 0;
  }

  int64_t now = nowMs();
  // Offered commands the target has not confirmed go again, first (they are older than
  // anything queued to it), with the same commandId: the client drops repeats (SPEC §4a).
  auto o = offered_.find(key);
  if (reofferOlderThanMs >= 0 && o != offered_.end()) {
    for (const auto& [seq, id] : o->second) {
      Command& c = commands_.at(id);
      if (reofferOlderThanMs > 0 && c.offeredAtMs > now - reofferOlderThanMs) continue;
      if (ctx_.sendEvent(key.userId, key.clientId, kEvCommand, commandEventJson(c)) == 0) break;
      c.offeredAtMs = now;
    }
  }

  auto q = queued_.find(key);
  if (q == queued_.end()) return;
  // A backlog goes out in windows: at most deliveryWindow_ commands to one terminal await
  // their reply at any time, so that a terminal coming back to thousands of commands neither
  // drowns in them nor overflows the broker's queue for its session (mosquitto drops beyond
  // max_queued_messages). The rest stay queued, in order, until replies and timeouts make
  // room (deliverFreed); the window is shared by all senders, and the head of the queue
  // always goes first, so send order per (sender, target) holds.
  size_t busy = inFlight(key);
  size_t room = busy < deliveryWindow_ ? deliveryWindow_ - busy : 0;
  if (room == 0) return;
  Batch b;
  for (const auto& [seq, id] : q->second) {
    if (room == 0) break;
    Command c = commands_.at(id);
    if (ctx_.sendEvent(key.userId, key.clientId, kEvCommand, commandEventJson(c)) == 0) break;
    ctx_.count("commands_relayed");
    --room;
    c.state = CommandState::kOffered;
    c.offeredAtMs = now;
    b.put(kCommands, seqKey(seq), toJson(c));
    b.apply([this, c] {
      eraseCommand(c.commandId);
      insertCommand(c);
    });
    b.hints.push_back(
        {c.from.key(), kEvCommandState, commandStateJson(c, CommandState::kOffered, nullptr)});
  }
  // Delivery happened; if recording it fails the command is delivered again later (at least
  // once, deduplicated by commandId), which beats forgetting it was sent.
  (void)commit(b, /*applyOnFailure=*/true);  // commit() logs a failure
}

void CoopRelayPlugin::flushAllOnline() {
  std::set<TerminalKey> keys;
  for (const auto& [k, q] : queued_) keys.insert(k);
  for (const auto& [k, box] : outbox_) keys.insert(k);
  for (const auto& [id, r] : requests_) keys.insert(r.to.key());
  for (const auto& [k, o] : offered_) keys.insert(k);
  for (const auto& k : keys) flush(k, /*reofferOlderThanMs=*/0);
}

void CoopRelayPlugin::deliverFreed() {
  // flush() changes nothing that adds to freed_ (it only moves queued commands to delivered),
  // but loop anyway rather than rely on that.
  while (!freed_.empty()) {
    std::set<TerminalKey> keys;
    keys.swap(freed_);
    for (const auto& k : keys) {
      if (queued_.count(k) == 0) continue;  // nothing waits: the room is simply free
      flush(k, kNoReoffer);
    }
  }
}

size_t CoopRelayPlugin::inFlight(const TerminalKey& target) const {
  auto it = inFlight_.find(target);
  return it == inFlight_.end() ? 0 : it->second;
}

void CoopRelayPlugin::armWriteBehind() {
  if (writeBehindTimer_.armed() || unacked_.empty()) return;
  // The oldest command without a record is written kWriteBehind after it went out.
  int64_t oldest = INT64_MAX;
  for (const auto& [id, r] : unacked_) oldest = std::min(oldest, commands_.at(id).offeredAtMs);
  const int64_t wait = std::max<int64_t>(1, oldest + kWriteBehind.count() - nowMs());
  writeBehindTimer_ = ctx_.after(std::chrono::milliseconds(wait), [this] {
    commitDelivered(/*dueOnly=*/true);
    deliverFreed();  // a failed commit drops its commands, and their window slots
  });
}

void CoopRelayPlugin::commitDelivered(bool dueOnly) {
  writeBehindTimer_.cancel();  // also when it is the one firing now
  if (unacked_.empty()) return;
  // dueOnly: just the commands out for kWriteBehind; a stream of fast round trips then writes
  // nothing at all (each reply comes before its command's turn), and no sender's answer waits
  // for the disk ahead of its commandResponse.
  std::map<std::string, Responder> acks;
  if (dueOnly) {
    const int64_t due = nowMs() - kWriteBehind.count();
    for (auto it = unacked_.begin(); it != unacked_.end();) {
      if (commands_.at(it->first).offeredAtMs <= due) {
        acks.insert(unacked_.extract(it++));
      } else {
        ++it;
      }
    }
  } else {
    acks.swap(unacked_);
  }
  if (!acks.empty()) {
    Batch b;
    for (const auto& [id, r] : acks) {
      const Command& c = commands_.at(id);
      b.put(kCommands, seqKey(c.seq), toJson(c));
    }
    Status s = commit(b);
    for (auto& [id, r] : acks) {
      if (s) {
        r.ok(sendResultJson(id, commands_.at(id).state));  // offered, or delivered if acked
      } else {
        // Delivered but not tracked: the sender hears INTERNAL and a reply finds nothing.
        eraseCommand(id);
        r.status(s);
      }
    }
  }
  armWriteBehind();
}

}  // namespace hearth::coop
