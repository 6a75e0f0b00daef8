#include "binding/device_table.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hearth::binding {
namespace {

Device dev(const std::string& id, const std::string& name = "") {
  Device d;
  d.deviceId = id;
  d.name = name;
  return d;
}

std::vector<std::string> ids(const DeviceTable& table) {
  std::vector<std::string> out;
  for (const DeviceEntry& e : table) out.push_back(e.device.deviceId);
  return out;
}

TEST(DeviceTable, FindsByIdAndIteratesInIdOrder) {
  DeviceTable table;
  EXPECT_TRUE(table.empty());
  for (const char* id : {"lamp", "ble-lock-0000000000000001", "door", "a"}) {
    auto [entry, added] = table.insert(dev(id), DeviceMeta{std::string("fw-") + id});
    EXPECT_TRUE(added);
    EXPECT_EQ(entry->device.deviceId, id);
  }
  EXPECT_EQ(table.size(), 4u);
  EXPECT_EQ(ids(table),
            (std::vector<std::string>{"a", "ble-lock-0000000000000001", "door", "lamp"}));
  ASSERT_NE(table.find("door"), nullptr);
  EXPECT_EQ(table.find("door")->meta.firmware, "fw-door");
  EXPECT_EQ(table.find(std::string("ble-lock-0000000000000001"))->meta.firmware,
            "fw-ble-lock-0000000000000001");
  EXPECT_EQ(table.find("doo"), nullptr);
  EXPECT_EQ(table.find(""), nullptr);
  const DeviceTable& constTable = table;
  EXPECT_EQ(constTable.find("lamp")->device.deviceId, "lamp");
}

TEST(DeviceTable, InsertingAHeldIdKeepsItsEntry) {
  DeviceTable table;
  DeviceEntry* first = table.insert(dev("lamp", "Desk lamp"), DeviceMeta{"1.0"}).first;
  auto [again, added] = table.insert(dev("lamp", "Other"), DeviceMeta{"2.0"});
  EXPECT_FALSE(added);
  EXPECT_EQ(again, first);
  EXPECT_EQ(first->device.name, "Desk lamp");
  EXPECT_EQ(first->meta.firmware, "1.0");
  EXPECT_EQ(table.size(), 1u);
}

// The UserIndex holds pointers to the table's Devices: swapping new state in, and adding other
// devices around it, keeps every entry where it was.
TEST(DeviceTable, ReplaceSwapsStateIntoTheSameEntry) {
  DeviceTable table;
  const std::string longId = "a-device-id-longer-than-fifteen-characters";
  DeviceEntry* entry = table.insert(dev(longId, "before"), DeviceMeta{"1.0"}).first;
  const Device* address = &entry->device;
  for (int i = 0; i < 100; ++i) table.insert(dev("dev" + std::to_string(i)));

  Device next = entry->device;
  next.name = "after";
  next.bindings.push_back(Binding{"alice", Role::kOwner, 5});
  DeviceTable::replace(*entry, std::move(next));

  const DeviceEntry* found = table.find(longId);
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(&found->device, address);
  EXPECT_EQ(found->device.name, "after");
  ASSERT_EQ(found->device.bindings.size(), 1u);
  EXPECT_EQ(found->device.bindings[0].userId, "alice");
  EXPECT_EQ(found->meta.firmware, "1.0");  // the meta is the caller's to change
  EXPECT_EQ(table.size(), 101u);
  EXPECT_EQ(ids(table).front(), longId);
}

TEST(DeviceTable, ForEachReachesEveryEntryInOrder) {
  DeviceTable table;
  table.insert(dev("b"));
  table.insert(dev("a"));
  std::vector<std::string> seen;
  table.forEach([&](DeviceEntry& e) {
    seen.push_back(e.device.deviceId);
    e.meta.lastSeenMs = 7;
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(table.find("a")->meta.lastSeenMs, 7);
  EXPECT_EQ(table.find("b")->meta.lastSeenMs, 7);
}

}  // namespace
}  // namespace hearth::binding
