// A plugin built against the SDK before the C boundary (ABI 1): it exports only
// hearth_plugin_entry(void), whose descriptor starts with abi_version 1 and hands out C++
// objects. hearthd must refuse it, naming ABI 1 and its own version.
#include <cstddef>
#include <cstdint>

namespace {
struct OldDescriptor {
  uint32_t abi_version;
  uint32_t struct_size;
  const char* name;
  const char* version;
  const void* config_keys;
  size_t config_key_count;
  void* (*create)(void*);
  void (*destroy)(void*);
};
}  // namespace

extern "C" __attribute__((visibility("default"))) const OldDescriptor* hearth_plugin_entry(void) {
  static const OldDescriptor d = {1, sizeof(OldDescriptor), "oldabi", "0.9.0", nullptr, 0,
                                  nullptr, nullptr};
  return &d;
}
