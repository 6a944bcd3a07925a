# SPDX-License-Identifier: MIT
# memspy dump target: mmapped chunks merged into a thread heap's VMA (built without sanitizers).
add_executable(heap_merge ${CMAKE_CURRENT_LIST_DIR}/heap_merge/heap_merge.c)
target_compile_options(heap_merge PRIVATE -O2 -g)
target_link_libraries(heap_merge PRIVATE pthread)
