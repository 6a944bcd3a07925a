# Names of JIT code from the target's /tmp/perf-PID.map (tests/e2e/perfmap_e2e.py):
# named in folded and pprof output; a missing map, a symlink and a FIFO leave
# the frames unnamed, with the hint, and never block memspy.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  foreach(_s named pprof none symlink fifo)
    ms_add_test(NAME symbols_perfmap_${_s} TIMEOUT 240 LABELS e2e record
                COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/perfmap_e2e.py
                        --memspy $<TARGET_FILE:memspy> --jit $<TARGET_FILE:memspy-jit-target>
                        --scenario ${_s} --workdir ${CMAKE_CURRENT_BINARY_DIR}/perfmap-e2e)
  endforeach()
endif()
