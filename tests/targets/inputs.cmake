# Targets for tests/inputs.cmake: processes that shape what memspy reads.
add_executable(fifo_module ${CMAKE_CURRENT_LIST_DIR}/fifo_module/fifo_module.c)
target_compile_options(fifo_module PRIVATE -O2 -g)
