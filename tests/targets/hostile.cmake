# SPDX-License-Identifier: MIT
# Target of the tamper tests (tests/hostile.cmake): it overwrites, unmaps or
# protects memspy's pages in it, or forks and execs fast. Unsanitized.
add_executable(memspy-hostile-target ${CMAKE_CURRENT_LIST_DIR}/hostile/hostile.c)
target_compile_options(memspy-hostile-target PRIVATE -O2 -g)
target_link_libraries(memspy-hostile-target PRIVATE pthread ${CMAKE_DL_LIBS})
