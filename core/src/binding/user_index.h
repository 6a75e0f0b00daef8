#pragma once
// UserIndex: user → the devices the user is bound to, shares from or is invited to, in device id
// order. Part of the BindingService's in-memory state (rebuilt per device on every swap).
//
// Holds pointers to the service's Device records instead of copies of their ids: with 100,000
// bindings that is 8 bytes an entry instead of a tree node and a string (~64 bytes). The pointers
// stay valid because the service never erases a device and swaps new state into the same map
// node. A (user, device) pair is held once however many ways the user is related to the device.

#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

#include "binding/policy.h"
#include "binding/user_id.h"

namespace hearth::binding {

class UserIndex {
 public:
  using Devices = std::vector<const Device*>;

  void add(const UserId& user, const Device* device) {
    Devices& list = byUser_[user];
    auto at = position(list, device->deviceId);
    if (at == list.end() || *at != device) list.insert(at, device);
  }

  void remove(const UserId& user, const Device* device) {
    auto it = byUser_.find(user);
    if (it == byUser_.end()) return;
    Devices& list = it->second;
    auto at = position(list, device->deviceId);
    if (at != list.end() && *at == device) list.erase(at);
    if (list.empty()) {
      byUser_.erase(it);
    } else if (list.capacity() > 2 * list.size() + 8) {
      list.shrink_to_fit();  // a user who let go of most devices does not keep the room
    }
  }

  // Gives back the room the lists grew into while they were built (a list grows by doubling,
  // up to half of it unused): called once the whole state is indexed at start-up.
  void compact() {
    for (auto& [user, list] : byUser_) list.shrink_to_fit();
  }

  // The user's devices in device id order; empty for a user without any.
  const Devices& devicesOf(const std::string& user) const {
    static const Devices kNone;
    auto id = UserId::find(user);  // a lookup that adds nothing
    if (!id) return kNone;
    auto it = byUser_.find(*id);
    return it == byUser_.end() ? kNone : it->second;
  }

  size_t users() const { return byUser_.size(); }

 private:
  static Devices::iterator position(Devices& list, const std::string& deviceId) {
    return std::lower_bound(
        list.begin(), list.end(), deviceId,
        [](const Device* d, const std::string& id) { return d->deviceId < id; });
  }

  // By the user id's shared copy: a hash of its address, no string compared.
  std::unordered_map<UserId, Devices, UserId::Hash> byUser_;
};

}  // namespace hearth::binding
