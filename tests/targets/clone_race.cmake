# A process that clones or forks while memspy attaches, for tests/clone_race.cmake.
add_executable(memspy-clone-race ${CMAKE_CURRENT_LIST_DIR}/clone_race/clone_race.c)
target_compile_options(memspy-clone-race PRIVATE -O2 -g)
target_link_libraries(memspy-clone-race PRIVATE pthread)
