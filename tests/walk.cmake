# `memspy record --mode walk`: a test-only binary (memspy-walk) runs the
# command until cmd/main.c routes it, and tests/e2e/walk_e2e.py drives it
# against the self-checking targets of tests/targets/walk.cmake.
add_executable(memspy-walk ${CMAKE_CURRENT_LIST_DIR}/e2e/walk_main.c
               ${PROJECT_SOURCE_DIR}/cmd/record_walk.c ${PROJECT_SOURCE_DIR}/cmd/record_walk_heap.c
               ${PROJECT_SOURCE_DIR}/cmd/record_walk_sampler.c
               ${PROJECT_SOURCE_DIR}/cmd/cli.c ${PROJECT_SOURCE_DIR}/cmd/attach_cli.c
               ${PROJECT_SOURCE_DIR}/cmd/record_opts.c)
target_include_directories(memspy-walk PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(memspy-walk PRIVATE ms_output ms_heapwalk ms_unwind ms_attach ms_common m)

find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  foreach(_s usage phases sites own target-exits fork-threads idle)
    ms_add_test(NAME walk_${_s} TIMEOUT 120 LABELS e2e walk
                COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/walk_e2e.py
                        --memspy $<TARGET_FILE:memspy-walk> --scenario ${_s}
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
                      --memspy $<TARGET_FILE:memspy-walk>
                      --bursts $<TARGET_FILE:memspy-walk-bursts>
                      --workdir ${CMAKE_CURRENT_BINARY_DIR}/walk-bias)
else()
  message(WARNING "python3 not found: the walk-mode end-to-end tests are not built")
endif()
