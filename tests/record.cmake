# End-to-end tests of `memspy record` (tests/e2e/record_e2e.py drives
# memspy-rec-target, a self-checking child; see the scenarios there).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  set(_rec_drv ${CMAKE_CURRENT_LIST_DIR}/e2e/record_e2e.py)
  foreach(_s usage unwritable mix-exact mix-sampled spaced-stacks unwinders custom-probe leak sigint sigterm
             sighup kill-target
             fork-threads)
    ms_add_test(NAME record_${_s} TIMEOUT 300 LABELS e2e record
                COMMAND ${Python3_EXECUTABLE} ${_rec_drv} --memspy $<TARGET_FILE:memspy>
                        --target $<TARGET_FILE:memspy-rec-target> --scenario ${_s}
                        --workdir ${CMAKE_CURRENT_BINARY_DIR}/record-e2e)
  endforeach()
else()
  message(WARNING "python3 not found: the record end-to-end tests are not built")
endif()

# The sample table (no ptrace).
add_executable(record_table_test ${CMAKE_CURRENT_LIST_DIR}/e2e/record_table_test.c)
target_include_directories(record_table_test PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(record_table_test PRIVATE ms_record ms_testlib)
ms_add_test(NAME record_table TIMEOUT 60 LABELS unit record COMMAND record_table_test)

# The sampling policy: --sample-bytes, --exact, --max-overhead to the mean and budget (no ptrace).
add_executable(record_policy_test ${PROJECT_SOURCE_DIR}/tests/unit/test_record_policy.c)
target_include_directories(record_policy_test PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(record_policy_test PRIVATE ms_record ms_testlib)
ms_add_test(NAME record_policy TIMEOUT 60 LABELS unit record COMMAND record_policy_test)
# A target that exits the moment memspy detaches: a complete recording exits 0 and says
# the code could not be read back (tests/e2e/exit_on_detach.py).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  ms_add_test(NAME record_exit_on_detach TIMEOUT 180 LABELS e2e record
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/exit_on_detach.py
            --memspy $<TARGET_FILE:memspy> --target $<TARGET_FILE:memspy-exit-on-detach>
            --workdir ${CMAKE_CURRENT_BINARY_DIR}/exit-on-detach)
endif()
# Stale stub return addresses in a caller's dead stack slots are no nested call
# (tests/e2e/exact_stale_stack.py, on memspy-top-target).
if(Python3_FOUND)
  ms_add_test(NAME record_exact_stale_stack TIMEOUT 180 LABELS e2e record
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/exact_stale_stack.py
            --memspy $<TARGET_FILE:memspy> --target $<TARGET_FILE:memspy-top-target>
            --workdir ${CMAKE_CURRENT_BINARY_DIR}/exact-stale-stack)
endif()
