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
#define HEARTH_ABI_HEADERS_SHA256 "b813642e091ff1876faf96d559b835697b51a4dc415cd400a0941dd228a5bb6e"

#endif
