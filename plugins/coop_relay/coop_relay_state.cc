// coop_relay's state: loading it from the KvStore, the in-memory indexes, and the change
// pipeline (a Batch committed in one transaction, then mirrored in memory and announced).
#include "coop_relay_plugin.h"

#include <algorithm>
#include <string>

#include "coop_relay_shared.h"

namespace hearth::coop {

using namespace relay;

// ------------------------------------------------------------------------------------------
// State in memory

Status CoopRelayPlugin::load() {
  KvStore& store = ctx_.store();
  // A record that no longer parses is logged and skipped: one bad row must not keep the whole
  // relay down, and it is never acknowledged work (we wrote it ourselves).
  auto scanAll = [&](const char* collection,
                     const std::function<void(const std::string&, const std::string&)>& fn) {
    return store.scan(collection, "", 0, [&](const std::string& key, const std::string& value) {
      try {
        fn(key, value);
      } catch (const std::exception& e) {
        ctx_.logger().error(std::string("skipping unreadable ") + collection + " record " + key +
                            ": " + e.what());
      }
      return true;
    });
  };
  Status s = scanAll(kGrants, [&](const std::string&, const std::string& v) {
    Grant g = grantFromJson(v);
    grants_[g.storeKey()] = std::move(g);
  });
  if (!s) return s;
  s = scanAll(kRequests, [&](const std::string&, const std::string& v) {
    insertRequest(accessRequestFromJson(v));
  });
  if (!s) return s;
  s = scanAll(kCommands, [&](const std::string&, const std::string& v) {
    Command c = commandFromJson(v);
    nextSeq_ = std::max(nextSeq_, c.seq + 1);
    insertCommand(c);
  });
  if (!s) return s;
  s = scanAll(kOutbox, [&](const std::string&, const std::string& v) {
    OutboxEntry e = outboxEntryFromJson(v);
    nextSeq_ = std::max(nextSeq_, e.seq + 1);
    insertOutbox(e);
  });
  if (!s) return s;
  return scanAll(kRemoved, [&](const std::string& k, const std::string&) {
    size_t slash = k.find('/');
    if (slash == std::string::npos) throw std::runtime_error("bad key");
    hidden_.insert(TerminalKey{k.substr(0, slash), k.substr(slash + 1)});
  });
}

void CoopRelayPlugin::insertCommand(const Command& c) {
  commands_[c.commandId] = c;
  if (c.state == CommandState::kQueued) queued_[c.to.key()][c.seq] = c.commandId;
  if (c.state == CommandState::kOffered) offered_[c.to.key()][c.seq] = c.commandId;
  if (c.inWindow()) ++inFlight_[c.to.key()];
  addDeadline(c.deadlineMs(), "c:" + c.commandId);
}

void CoopRelayPlugin::eraseCommand(const std::string& commandId) {
  auto it = commands_.find(commandId);
  if (it == commands_.end()) return;
  const Command& c = it->second;
  if (c.state == CommandState::kQueued) {
    auto q = queued_.find(c.to.key());
    if (q != queued_.end()) {
      q->second.erase(c.seq);
      if (q->second.empty()) queued_.erase(q);
    }
  }
  if (c.state == CommandState::kOffered) {
    auto o = offered_.find(c.to.key());
    if (o != offered_.end()) {
      o->second.erase(c.seq);
      if (o->second.empty()) offered_.erase(o);
    }
  }
  if (c.inWindow()) {
    // Replied, timed out, expired or dropped: its slot in the target's delivery window is free
    // for the next queued command (deliverFreed).
    auto f = inFlight_.find(c.to.key());
    if (f != inFlight_.end() && --f->second == 0) inFlight_.erase(f);
    freed_.insert(c.to.key());
  }
  removeDeadline("c:" + commandId);
  commands_.erase(it);
  // A sender still waiting for its sendCommand answer gets INTERNAL from the core once this
  // last copy of its responder is gone (only when its user was removed meanwhile).
  unacked_.erase(commandId);
}

void CoopRelayPlugin::insertRequest(const AccessRequest& r) {
  requests_[r.commandId] = r;
  addDeadline(r.expiresAtMs, "r:" + r.commandId);
}

void CoopRelayPlugin::eraseRequest(const std::string& commandId) {
  auto it = requests_.find(commandId);
  if (it == requests_.end()) return;
  removeDeadline("r:" + commandId);
  requests_.erase(it);
}

void CoopRelayPlugin::insertOutbox(const OutboxEntry& e) {
  outbox_[e.to][e.seq] = e;
  outboxOwner_[e.seq] = e.to;
  addDeadline(e.expiresAtMs, "o:" + seqKey(e.seq));
}

void CoopRelayPlugin::eraseOutbox(uint64_t seq) {
  auto owner = outboxOwner_.find(seq);
  if (owner == outboxOwner_.end()) return;
  auto box = outbox_.find(owner->second);
  if (box != outbox_.end()) {
    auto e = box->second.find(seq);
    if (e != box->second.end()) {
      removeDeadline("o:" + seqKey(seq));
      box->second.erase(e);
    }
    if (box->second.empty()) outbox_.erase(box);
  }
  outboxOwner_.erase(owner);
}

// ------------------------------------------------------------------------------------------
// The change pipeline

Status CoopRelayPlugin::commit(Batch& batch, bool applyOnFailure) {
  // A durable notice for an offline terminal becomes an outbox row in the same transaction, so
  // that the change and the promise to tell someone about it are one commit.
  std::vector<OutboxEntry> staged;
  std::vector<const Notice*> direct;
  for (const Notice& n : batch.durable) {
    if (!n.keep && isOnline(n.to)) {
      direct.push_back(&n);
      continue;
    }
    if (!ctx_.terminal(n.to.userId, n.to.clientId)) continue;  // gone for good: nobody to tell
    OutboxEntry e{nextSeq_++, n.to, n.event, n.dataJson, n.expiresAtMs};
    batch.put(kOutbox, seqKey(e.seq), toJson(e));
    staged.push_back(std::move(e));
  }

  KvStore& store = ctx_.store();
  Status s;
  if (!batch.ops.empty()) {
    s = store.transaction([&]() -> Status {
      for (const auto& op : batch.ops) {
        Status w = op.erase ? store.erase(op.collection, op.key)
                            : store.put(op.collection, op.key, op.value);
        if (!w) return w;
      }
      return Status::ok();
    });
  }
  if (!s) {
    ctx_.logger().error("store commit failed: " + s.toString());
    if (!applyOnFailure) return s;
  }

  for (auto& fn : batch.applies) fn();
  for (const auto& e : staged) insertOutbox(e);
  for (const Notice* n : direct) sendNotice(*n);
  for (const Notice& n : batch.hints) {
    ctx_.sendEvent(n.to.userId, n.to.clientId, n.event, n.dataJson);
  }
  armTimer();
  return s;
}

void CoopRelayPlugin::sendNotice(const Notice& n) {
  if (ctx_.sendEvent(n.to.userId, n.to.clientId, n.event, n.dataJson) > 0) return;
  // The terminal dropped between our presence check and the send: keep the notice.
  OutboxEntry e{nextSeq_++, n.to, n.event, n.dataJson, n.expiresAtMs};
  Status s = ctx_.store().put(kOutbox, seqKey(e.seq), toJson(e));
  if (!s) ctx_.logger().error("could not keep a " + n.event + " notice: " + s.toString());
  insertOutbox(e);
}

void CoopRelayPlugin::decideRequest(Batch& batch, const AccessRequest& r, AccessResponseCode code,
                                    const Endpoint& decider) {
  batch.erase(kRequests, r.commandId);
  batch.apply([this, id = r.commandId] { eraseRequest(id); });
  Object data;
  data.set("commandId", r.commandId);
  data.set("code", static_cast<int>(code));
  data.set("from", endpointJson(decider));
  if (code != AccessResponseCode::kAgreed) data.set("message", accessMessage(code));
  batch.durable.push_back({r.from.key(), kEvAccessResponse, json::text(data), nowMs() + commandTtlMs_});
}

void CoopRelayPlugin::finishCommand(Batch& batch, const Command& c, CommandState state,
                                    const char* reason) {
  batch.erase(kCommands, seqKey(c.seq));
  batch.apply([this, id = c.commandId] { eraseCommand(id); });
  batch.durable.push_back(
      {c.from.key(), kEvCommandState, commandStateJson(c, state, reason), nowMs() + commandTtlMs_});
}

void CoopRelayPlugin::revokeGrant(Batch& batch, const Grant& g) {
  batch.erase(kGrants, g.storeKey());
  batch.apply([this, key = g.storeKey()] { grants_.erase(key); });
  // Commands still queued from the grantee were allowed by this grant only; delivering them
  // after the granter withdrew it would bypass the check made "on every command".
  auto q = queued_.find(g.granter.key());
  if (q != queued_.end()) {
    for (const auto& [seq, id] : q->second) {
      const Command& c = commands_.at(id);
      if (c.from.key() == g.grantee.key())
        finishCommand(batch, c, CommandState::kExpired, "revoked");
    }
  }
  batch.hints.push_back(syncHint(g.granter.key(), kSyncAuthorized));
  batch.hints.push_back(syncHint(g.grantee.key(), kSyncAccessible));
}

void CoopRelayPlugin::purgeTerminal(Batch& batch, const TerminalKey& key, bool senderGone) {
  std::set<TerminalKey> lostGrantFrom;  // terminals whose grant to `key` disappears
  for (const auto& [storeKey, g] : grants_) {
    if (g.granter.key() != key && g.grantee.key() != key) continue;
    batch.erase(kGrants, storeKey);
    batch.apply([this, k = storeKey] { grants_.erase(k); });
    if (g.granter.key() == key) {
      batch.hints.push_back(syncHint(g.grantee.key(), kSyncAccessible));
    } else {
      lostGrantFrom.insert(g.granter.key());
      batch.hints.push_back(syncHint(g.granter.key(), kSyncAuthorized));
    }
  }
  for (const auto& [id, r] : requests_) {
    if (r.to.key() == key) {
      decideRequest(batch, r, AccessResponseCode::kRemoved, r.to);
    } else if (r.from.key() == key) {
      // The requester is gone; the target simply never gets an answer to give.
      batch.erase(kRequests, id);
      batch.apply([this, id = id] { eraseRequest(id); });
    }
  }
  for (const auto& [id, c] : commands_) {
    bool queued = c.state == CommandState::kQueued;
    if (c.from.key() == key && senderGone) {
      batch.erase(kCommands, seqKey(c.seq));
      batch.apply([this, id = id] { eraseCommand(id); });
    } else if ((queued || c.state == CommandState::kOffered) && c.to.key() == key) {
      // Queued, or offered but never confirmed: the removed terminal will not acknowledge it.
      finishCommand(batch, c, CommandState::kExpired, "removed");
    } else if (queued && c.from.key() == key && lostGrantFrom.count(c.to.key()) > 0) {
      // Sent by the removed terminal under a grant that is gone now.
      finishCommand(batch, c, CommandState::kExpired, "revoked");
    }
  }
  auto box = outbox_.find(key);
  if (box != outbox_.end()) {
    for (const auto& [seq, e] : box->second) {
      batch.erase(kOutbox, seqKey(seq));
      batch.apply([this, seq = seq] { eraseOutbox(seq); });
    }
  }
}

}  // namespace hearth::coop
