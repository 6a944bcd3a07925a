# A process whose threads block every signal (as jemalloc's background thread
# does), for tests/sigblock.cmake. Frame pointers and no sibling calls: the
# sites must be on the recorded stacks.
add_executable(memspy-sigblock-target ${CMAKE_CURRENT_LIST_DIR}/sigblock/sigblock.c)
target_compile_options(memspy-sigblock-target PRIVATE -O2 -g -fno-optimize-sibling-calls
                       -fno-omit-frame-pointer)
target_link_libraries(memspy-sigblock-target PRIVATE pthread)
