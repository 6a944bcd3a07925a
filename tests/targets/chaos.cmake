# SPDX-License-Identifier: MIT
# Target of the survival tests (tests/chaos.cmake): unsanitized, as a
# production service would be.
add_executable(memspy-chaos-target ${CMAKE_CURRENT_LIST_DIR}/chaos_alloc/chaos_alloc.c)
target_compile_options(memspy-chaos-target PRIVATE -O2 -g)
target_link_libraries(memspy-chaos-target PRIVATE pthread)
