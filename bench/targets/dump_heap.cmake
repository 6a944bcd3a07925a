# SPDX-License-Identifier: MIT
# memspy dump benchmark target: a >1 GiB heap in >5 M chunks, idle on a pipe.
add_executable(dump_heap ${CMAKE_CURRENT_LIST_DIR}/dump_heap.c)
target_compile_options(dump_heap PRIVATE -O2 -g)
target_link_libraries(dump_heap PRIVATE pthread)
