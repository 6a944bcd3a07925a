# memspy-jit-target: allocations from generated code named in /tmp/perf-PID.map
# (tests/symbols.cmake, scenario perf-map). Frame pointers, as JIT code keeps them.
add_executable(memspy-jit-target ${CMAKE_CURRENT_LIST_DIR}/jit/jit_target.c)
target_compile_options(memspy-jit-target PRIVATE -O2 -g -fno-omit-frame-pointer)
