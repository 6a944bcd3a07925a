# Targets for the attach tests (tests/attach.cmake): plain programs, never sanitized.
add_executable(attach_threads ${CMAKE_CURRENT_LIST_DIR}/attach_threads/attach_threads.c)
target_compile_options(attach_threads PRIVATE -O2 -g)
target_link_libraries(attach_threads PRIVATE pthread ${CMAKE_DL_LIBS})
