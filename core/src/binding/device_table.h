#pragma once
// DeviceTable: the binding service's devices, each held once with the record the policy does
// not read (DeviceMeta), in device id order. Part of the BindingService's in-memory state.
//
// One tree node per device, keyed by the Device's own id: no second copy of the id as a map key
// and no second map for the DeviceMeta (with 10,000 devices that was a node, a key and malloc's
// overhead twice per device, ~1.1 MB). Entries are never erased, and an entry's address stays
// the same for the table's life (the UserIndex holds pointers to its Devices): state is swapped
// into the same node (replace()).

#include <cassert>
#include <set>
#include <string>
#include <string_view>

#include "binding/policy.h"

namespace hearth::binding {

// What the devices table holds beside the policy's Device (firmware and inventory flags are
// shown and stored, never decided on).
struct DeviceMeta {
  SharedText firmware;
  bool inventoryOnly = false;
  int64_t firstSeenMs = 0;
  int64_t lastSeenMs = 0;
  bool operator==(const DeviceMeta&) const = default;
};

struct DeviceEntry {
  Device device;
  DeviceMeta meta;
};

class DeviceTable {
 public:
  // The entry of `deviceId`, or nullptr.
  DeviceEntry* find(std::string_view deviceId) {
    auto it = entries_.find(deviceId);
    // A set hands out its elements const so that their keys stay put; only the id orders the
    // set, and replace() keeps it.
    return it == entries_.end() ? nullptr : const_cast<DeviceEntry*>(&*it);
  }
  const DeviceEntry* find(std::string_view deviceId) const {
    auto it = entries_.find(deviceId);
    return it == entries_.end() ? nullptr : &*it;
  }

  // Adds a device under its own id; an id already held keeps its entry and gets nothing.
  // Returns the entry of the id and whether it was added.
  std::pair<DeviceEntry*, bool> insert(Device device, DeviceMeta meta = {}) {
    auto [it, added] = entries_.insert(DeviceEntry{std::move(device), std::move(meta)});
    return {const_cast<DeviceEntry*>(&*it), added};
  }

  // Swaps new state into an entry: `next` is a changed copy of the entry's device, with its id
  // (the set's order is by the id's text, so it stays where it is).
  static void replace(DeviceEntry& entry, Device next) {
    assert(next.deviceId == entry.device.deviceId);
    entry.device = std::move(next);
  }

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }

  // In device id order (listDevices, the load's passes).
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }
  template <typename F>
  void forEach(F&& f) {
    for (const DeviceEntry& e : entries_) f(const_cast<DeviceEntry&>(e));
  }

 private:
  struct ById {
    using is_transparent = void;
    static std::string_view id(const DeviceEntry& e) { return e.device.deviceId; }
    static std::string_view id(std::string_view s) { return s; }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return id(a) < id(b);
    }
  };
  std::set<DeviceEntry, ById> entries_;
};

}  // namespace hearth::binding
