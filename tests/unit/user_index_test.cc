#include "binding/user_index.h"

#include <gtest/gtest.h>

#include <map>

namespace hearth::binding {
namespace {

Device dev(const std::string& id) {
  Device d;
  d.deviceId = id;
  return d;
}

std::vector<std::string> ids(const UserIndex::Devices& list) {
  std::vector<std::string> out;
  for (const Device* d : list) out.push_back(d->deviceId);
  return out;
}

TEST(UserIndex, KeepsDevicesInIdOrderOncePerUser) {
  std::map<std::string, Device> devices{{"c", dev("c")}, {"a", dev("a")}, {"b", dev("b")}};
  UserIndex index;
  index.add("alice", &devices["c"]);
  index.add("alice", &devices["a"]);
  index.add("alice", &devices["b"]);
  index.add("alice", &devices["a"]);  // bound and sharer: still once
  index.add("bob", &devices["b"]);
  EXPECT_EQ(ids(index.devicesOf("alice")), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ids(index.devicesOf("bob")), (std::vector<std::string>{"b"}));
  EXPECT_TRUE(index.devicesOf("carol").empty());
  EXPECT_EQ(index.users(), 2u);
}

TEST(UserIndex, RemoveDropsThePairAndEmptyUsers) {
  std::map<std::string, Device> devices{{"a", dev("a")}, {"b", dev("b")}};
  UserIndex index;
  index.add("alice", &devices["a"]);
  index.add("alice", &devices["b"]);
  index.add("bob", &devices["a"]);
  index.remove("alice", &devices["a"]);
  index.remove("alice", &devices["a"]);  // absent: no-op
  index.remove("carol", &devices["a"]);  // unknown user: no-op
  EXPECT_EQ(ids(index.devicesOf("alice")), (std::vector<std::string>{"b"}));
  index.remove("alice", &devices["b"]);
  EXPECT_TRUE(index.devicesOf("alice").empty());
  EXPECT_EQ(index.users(), 1u);
  EXPECT_EQ(ids(index.devicesOf("bob")), (std::vector<std::string>{"a"}));
}

TEST(UserIndex, ManyDevicesStaySortedAndShrink) {
  std::map<std::string, Device> devices;
  for (int i = 0; i < 1000; ++i) {
    std::string id = "dev" + std::to_string((i * 7919) % 1000);
    devices.emplace(id, dev(id));
  }
  UserIndex index;
  for (auto& [id, d] : devices) index.add("u", &d);
  ASSERT_EQ(index.devicesOf("u").size(), 1000u);
  int n = 0;
  for (auto& [id, d] : devices) {
    if (n++ % 10 != 0) index.remove("u", &d);
  }
  const auto& left = index.devicesOf("u");
  ASSERT_EQ(left.size(), 100u);
  EXPECT_TRUE(std::is_sorted(left.begin(), left.end(), [](const Device* a, const Device* b) {
    return a->deviceId < b->deviceId;
  }));
  EXPECT_LE(left.capacity(), 2 * left.size() + 8);
}

}  // namespace
}  // namespace hearth::binding
