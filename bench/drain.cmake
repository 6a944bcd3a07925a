# The drain + unwind microbenchmark on a real recording's samples (prints
# figures; never pass/fail): bench/drain_replay.sh records the dump and runs
#   drain_replay PID DUMP [ROUNDS [BATCH]]
# Not built by default (cmake --build BUILD --target drain_replay; the script
# does it). It drives the ring drain through the probe engine the ring fuzzer uses
# (ms_probes_fuzz_new), so attach/ is compiled again with MEMSPY_FUZZ_RING.
file(GLOB _drain_attach CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/attach/*.c
     ${PROJECT_SOURCE_DIR}/attach/*.S)
add_library(ms_attach_ringbench STATIC EXCLUDE_FROM_ALL ${_drain_attach})
target_compile_definitions(ms_attach_ringbench PUBLIC MEMSPY_FUZZ_RING)
target_include_directories(ms_attach_ringbench PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(ms_attach_ringbench PUBLIC ms_common PkgConfig::LIBDW ms_zydis)
add_executable(drain_replay EXCLUDE_FROM_ALL ${CMAKE_CURRENT_LIST_DIR}/drain_replay.c)
target_link_libraries(drain_replay PRIVATE ms_attach_ringbench ms_unwind ms_common)
