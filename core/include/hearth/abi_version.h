#ifndef HEARTH_ABI_VERSION_H
#define HEARTH_ABI_VERSION_H
/* The plugin ABI version and the SDK headers it stands for.
 *
 * HEARTH_ABI_HEADERS_SHA256 is the SHA-256 the build computes over every other header under
 * include/hearth/ (cmake/HearthAbi.cmake). When a header changes, unit.abi_version_test fails
 * until this file records the new hash; bump HEARTH_ABI_VERSION with it unless the change only
 * adds members at the end of a struct or edits comments (then a plugin built against the old
 * headers still works, and the version stays). */
#define HEARTH_ABI_VERSION 2
#define HEARTH_ABI_HEADERS_SHA256 "f704ee4b830b0ddc6013d78ebbc52e0b481971e29021c043d73acdfe37f0d117"

#endif
