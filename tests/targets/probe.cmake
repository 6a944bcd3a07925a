# SPDX-License-Identifier: MIT
# Target of the probe tests (unsanitized, as production code would be).
add_executable(probe_alloc ${CMAKE_CURRENT_LIST_DIR}/probe_alloc/probe_alloc.c)
target_compile_options(probe_alloc PRIVATE -O2 -g)
target_link_libraries(probe_alloc PRIVATE pthread)
