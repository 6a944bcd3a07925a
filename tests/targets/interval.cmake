# SPDX-License-Identifier: MIT
# Target of the --interval and --probe-free tests (tests/interval.cmake).
add_executable(memspy-interval-leak ${CMAKE_CURRENT_LIST_DIR}/interval_leak/interval_leak.c)
target_compile_options(memspy-interval-leak PRIVATE -O2 -g -fno-optimize-sibling-calls
                       -fno-omit-frame-pointer)
target_link_libraries(memspy-interval-leak PRIVATE pthread)
