# `memspy record --mode walk`: tests/e2e/walk_e2e.py drives the memspy binary
# against the self-checking targets of tests/targets/walk.cmake.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  foreach(_s usage phases sites own target-exits fork-threads idle one-point exec)
    ms_add_test(NAME walk_${_s} TIMEOUT 120 LABELS e2e walk
                COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/walk_e2e.py
                        --memspy $<TARGET_FILE:memspy> --scenario ${_s}
                        --phases $<TARGET_FILE:memspy-walk-phases>
                        --sites $<TARGET_FILE:memspy-walk-sites>
                        --own $<TARGET_FILE:memspy-walk-own>
                        --rec $<TARGET_FILE:memspy-rec-target>
                        --bursts $<TARGET_FILE:memspy-walk-bursts>
                        --workdir ${CMAKE_CURRENT_BINARY_DIR}/walk-e2e)
  endforeach()
  # Sampling bias against the kernel's accounting (tests/e2e/walk_bias.py):
  # three burst shapes, two runs each; ~45 s of recording in all.
  ms_add_test(NAME walk_bias TIMEOUT 600 LABELS e2e walk
              COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/walk_bias.py
                      --memspy $<TARGET_FILE:memspy> record
                      --bursts $<TARGET_FILE:memspy-walk-bursts>
                      --workdir ${CMAKE_CURRENT_BINARY_DIR}/walk-bias)
else()
  message(WARNING "python3 not found: the walk-mode end-to-end tests are not built")
endif()
