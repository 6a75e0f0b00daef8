// The SDK headers cannot change without the ABI version being reconsidered: the build hashes
// them (cmake/HearthAbi.cmake) and abi_version.h records the hash its version stands for.
#include <gtest/gtest.h>

#include <string>

#include "hearth/abi_version.h"
#include "hearth_abi_hash.h"

TEST(AbiVersion, RecordedHashMatchesTheHeaders) {
  EXPECT_EQ(std::string(HEARTH_ABI_HEADERS_SHA256), std::string(HEARTH_ABI_HEADERS_SHA256_BUILT))
      << "the SDK headers under core/include/hearth changed: decide whether the change breaks "
         "plugins built against the old headers (a member not at the end of a struct, a changed "
         "signature or meaning: bump HEARTH_ABI_VERSION), then record "
      << HEARTH_ABI_HEADERS_SHA256_BUILT
      << " as HEARTH_ABI_HEADERS_SHA256 in core/include/hearth/abi_version.h";
}
