add_executable(alloc_bench ${CMAKE_CURRENT_LIST_DIR}/alloc_bench.c)
target_compile_options(alloc_bench PRIVATE -O2 -g -fomit-frame-pointer)
target_link_libraries(alloc_bench PRIVATE pthread)
