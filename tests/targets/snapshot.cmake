# Target for the dump snapshot tests (tests/snapshot.cmake): busy threads, a heap, a stdin protocol.
add_executable(snapshot_busy ${CMAKE_CURRENT_LIST_DIR}/snapshot_busy/snapshot_busy.c)
target_compile_options(snapshot_busy PRIVATE -O2 -g)
target_link_libraries(snapshot_busy PRIVATE pthread)
