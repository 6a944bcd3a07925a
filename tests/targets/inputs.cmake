# Targets for tests/inputs.cmake: processes that shape what memspy reads.
add_executable(fifo_module ${CMAKE_CURRENT_LIST_DIR}/fifo_module/fifo_module.c)
target_compile_options(fifo_module PRIVATE -O2 -g)
# debuglink_fifo loads libms_dl_alloc.so, which tests/e2e/debuglink_fifo.sh
# strips and gives a .gnu_debuglink that names a FIFO.
add_library(ms_dl_alloc SHARED ${CMAKE_CURRENT_LIST_DIR}/debuglink_fifo/dl_alloc.c)
target_compile_options(ms_dl_alloc PRIVATE -O2 -g)
add_executable(debuglink_fifo ${CMAKE_CURRENT_LIST_DIR}/debuglink_fifo/debuglink_fifo.c)
target_compile_options(debuglink_fifo PRIVATE -O2 -g)
target_link_libraries(debuglink_fifo PRIVATE ${CMAKE_DL_LIBS})
