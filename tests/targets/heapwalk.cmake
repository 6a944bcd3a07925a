# Targets for memspy dump (heapwalk): built without sanitizers, like production.
add_executable(heap_mallinfo ${CMAKE_CURRENT_LIST_DIR}/heap_mallinfo/heap_mallinfo.c)
target_compile_options(heap_mallinfo PRIVATE -O2 -g)
target_link_libraries(heap_mallinfo PRIVATE pthread)
# A daemonizing, pre-forking server's shape (nginx): [heap] and a thread heap split by fork.
add_executable(heap_prefork ${CMAKE_CURRENT_LIST_DIR}/heap_prefork/heap_prefork.c)
target_compile_options(heap_prefork PRIVATE -O2 -g)
target_link_libraries(heap_prefork PRIVATE pthread)

# Foreign allocators: the same program with jemalloc/tcmalloc/mimalloc preloaded,
# linked statically, and built against musl.
add_executable(heap_foreign ${CMAKE_CURRENT_LIST_DIR}/heap_foreign/heap_foreign.c)
target_compile_options(heap_foreign PRIVATE -O2)
add_executable(heap_foreign_static ${CMAKE_CURRENT_LIST_DIR}/heap_foreign/heap_foreign.c)
target_compile_options(heap_foreign_static PRIVATE -O2)
target_link_options(heap_foreign_static PRIVATE -static)
find_program(MS_MUSL_GCC musl-gcc)
if(MS_MUSL_GCC)
  add_custom_command(OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/heap_foreign_musl
    COMMAND ${MS_MUSL_GCC} -O2 -o ${CMAKE_CURRENT_BINARY_DIR}/heap_foreign_musl
            ${CMAKE_CURRENT_LIST_DIR}/heap_foreign/heap_foreign.c
    DEPENDS ${CMAKE_CURRENT_LIST_DIR}/heap_foreign/heap_foreign.c VERBATIM)
  add_custom_target(heap_foreign_musl ALL DEPENDS ${CMAKE_CURRENT_BINARY_DIR}/heap_foreign_musl)
endif()
