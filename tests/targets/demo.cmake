# The README's demo program.
add_executable(memspy-demo ${CMAKE_CURRENT_LIST_DIR}/demo/demo_service.c)
target_compile_options(memspy-demo PRIVATE -O2 -g)
target_link_libraries(memspy-demo PRIVATE pthread)
