# Target for the quiescing tests (tests/quiesce.cmake): threads that only malloc and free.
add_executable(quiesce_busy ${CMAKE_CURRENT_LIST_DIR}/quiesce_busy/quiesce_busy.c)
target_compile_options(quiesce_busy PRIVATE -O2 -g)
target_link_libraries(quiesce_busy PRIVATE pthread)
