# The program `memspy top` tests watch (see tests/top.cmake). Flags as the
# record target's: the announced stacks must be the real ones.
file(GLOB _top_src CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/top_mix/*.c)
add_executable(memspy-top-target ${_top_src})
target_compile_options(memspy-top-target PRIVATE -O2 -g -fno-optimize-sibling-calls
                       -fno-omit-frame-pointer)
target_link_libraries(memspy-top-target PRIVATE pthread)
