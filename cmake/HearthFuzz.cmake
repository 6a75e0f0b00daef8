# libFuzzer targets (HEARTH_BUILD_FUZZERS=ON, clang from Debian: clang + libclang-rt-14-dev).
# Configure a separate build tree for them, e.g.
#
#   cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DHEARTH_BUILD_FUZZERS=ON \
#         -DHEARTH_BUILD_TESTS=OFF -DHEARTH_BUILD_BENCH=OFF
#   cmake --build build-fuzz --target hearth_fuzzers
#
# Every hearth target of that tree is built with ASan+UBSan (HEARTH_SANITIZE), and the code
# under test with coverage feedback (-fsanitize=fuzzer-no-link), see hearth_fuzz_instrument().
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "HEARTH_BUILD_FUZZERS needs clang (libFuzzer): configure a separate build "
                      "directory with -DCMAKE_CXX_COMPILER=clang++")
endif()
set(HEARTH_SANITIZE ON)

# Coverage feedback for a library the fuzzers link (hearth_core), so the fuzzer sees which
# branches of the code under test an input reached.
function(hearth_fuzz_instrument target)
  target_compile_options(${target} PRIVATE -fsanitize=fuzzer-no-link)
endfunction()

# hearth_add_fuzzer(NAME SOURCES src... [LINKS lib...] [INCLUDES dir...]
#                   [RUNS n] [MAX_TIME s] [MAX_LEN bytes] [DICT file])
# Builds the libFuzzer executable NAME and registers the ctest test fuzz.NAME: a bounded run
# (RUNS inputs or MAX_TIME seconds, whichever comes first) from the checked-in seed corpus
# tests/fuzz/corpus/NAME, which also holds every input that once found a bug. The run is
# repeatable: a fixed seed and an emptied scratch corpus (fuzz-corpus/NAME in the build tree,
# never the source tree), so a failure in CI is the same failure on a developer's machine. A
# crash leaves its input in fuzz-artifacts/ and fails the test.
function(hearth_add_fuzzer name)
  cmake_parse_arguments(F "" "RUNS;MAX_TIME;MAX_LEN;DICT" "SOURCES;LINKS;INCLUDES" ${ARGN})
  add_executable(${name} ${F_SOURCES})
  target_link_libraries(${name} PRIVATE ${F_LINKS})
  target_include_directories(${name} PRIVATE ${F_INCLUDES})
  hearth_warnings(${name})
  target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  add_dependencies(hearth_fuzzers ${name})

  if(NOT F_RUNS)
    set(F_RUNS 20000)
  endif()
  if(NOT F_MAX_TIME)
    set(F_MAX_TIME 60)
  endif()
  if(NOT F_MAX_LEN)
    set(F_MAX_LEN 4096)
  endif()
  set(seeds ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/${name})
  set(scratch ${CMAKE_BINARY_DIR}/fuzz-corpus/${name})
  set(artifacts ${CMAKE_BINARY_DIR}/fuzz-artifacts)
  file(MAKE_DIRECTORY ${artifacts})
  set(options -seed=1 -runs=${F_RUNS} -max_total_time=${F_MAX_TIME} -max_len=${F_MAX_LEN}
              -timeout=30 -rss_limit_mb=2048 -print_final_stats=1
              -artifact_prefix=${artifacts}/${name}-)
  if(F_DICT)
    list(APPEND options -dict=${F_DICT})
  endif()
  list(JOIN options " " options)
  # For `make fuzz-long` (tests/fuzz/fuzz_long.sh): one line per target, written by
  # tests/fuzz/CMakeLists.txt to fuzz-targets.txt in the build tree.
  set_property(GLOBAL APPEND PROPERTY HEARTH_FUZZ_TARGETS
    "${name} $<TARGET_FILE:${name}> ${F_MAX_LEN} ${seeds} ${F_DICT}")
  add_test(NAME fuzz.${name} COMMAND sh -c
    "rm -rf '${scratch}' && mkdir -p '${scratch}' && exec '$<TARGET_FILE:${name}>' ${options} '${scratch}' '${seeds}'")
  set_tests_properties(fuzz.${name} PROPERTIES LABELS fuzz TIMEOUT 600
    ENVIRONMENT "ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:print_stacktrace=1;UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1")
endfunction()
