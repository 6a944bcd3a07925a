# memspy-prefork-target: a pre-forking, daemonizing server in miniature for
# --subprocesses (tests/subprocesses.cmake). Same flags as the record target:
# the announced stacks must be the real ones.
file(GLOB _pf_src CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/prefork/*.c)
add_executable(memspy-prefork-target ${_pf_src})
target_compile_options(memspy-prefork-target PRIVATE -O2 -g -fno-optimize-sibling-calls
                       -fno-omit-frame-pointer)
