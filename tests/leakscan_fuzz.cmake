# libFuzzer on the leak scan over damaged synthetic heaps (clang only): a short
# fixed run here; long runs by hand (doc/TESTING.md).
find_program(MS_CLANG NAMES clang-14 clang)
if(MS_CLANG)
  file(GLOB _ls_src CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/heapwalk/*.c)
  add_custom_command(OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/fuzz_leakscan
    COMMAND ${MS_CLANG} -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE
            -DHELPER_MIN_BYTES=64
            -I${PROJECT_SOURCE_DIR} -o ${CMAKE_CURRENT_BINARY_DIR}/fuzz_leakscan
            ${CMAKE_CURRENT_LIST_DIR}/fuzz/fuzz_leakscan.c ${_ls_src}
            ${MS_FUZZ_READERS_SRC} ${MS_FUZZ_READERS_LIBS} -lstdc++
    DEPENDS ${CMAKE_CURRENT_LIST_DIR}/fuzz/fuzz_leakscan.c
            ${CMAKE_CURRENT_LIST_DIR}/unit/heap_synth.h ${_ls_src} ${MS_FUZZ_READERS_SRC}
    VERBATIM)
  add_custom_target(fuzz_leakscan ALL DEPENDS ${CMAKE_CURRENT_BINARY_DIR}/fuzz_leakscan)
  # New inputs go to the first directory (the build's), the seeds are only read.
  file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/leakscan_corpus)
  ms_add_test(NAME leak_scan_fuzz TIMEOUT 120
    COMMAND ${CMAKE_CURRENT_BINARY_DIR}/fuzz_leakscan -max_total_time=30 -timeout=10 -error_exitcode=1
            -rss_limit_mb=1024 -max_len=4096 ${CMAKE_CURRENT_BINARY_DIR}/leakscan_corpus
            ${CMAKE_CURRENT_LIST_DIR}/fuzz/leakscan_seeds)
  # Inputs that once hung or crashed the scan, each run once: a chunk list whose
  # sizes reach over unmapped terabytes (was read page by page: a hang); a
  # damaged segment of ~256 GiB (its page index took seconds and 256 MiB); a walk
  # with 8 errors whose leak report was not marked partial.
  file(GLOB _ls_seeds ${CMAKE_CURRENT_LIST_DIR}/fuzz/leakscan_seeds/*)
  ms_add_test(NAME leak_scan_regress TIMEOUT 60
    COMMAND ${CMAKE_CURRENT_BINARY_DIR}/fuzz_leakscan -timeout=20 ${_ls_seeds})
endif()
