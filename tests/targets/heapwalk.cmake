# Targets for memspy dump (heapwalk): built without sanitizers, like production.
add_executable(heap_mallinfo ${CMAKE_CURRENT_LIST_DIR}/heap_mallinfo/heap_mallinfo.c)
target_compile_options(heap_mallinfo PRIVATE -O2 -g)
target_link_libraries(heap_mallinfo PRIVATE pthread)
