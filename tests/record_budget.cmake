# The overhead budget of `memspy record` (--max-overhead): the controller on
# synthetic readings (no ptrace), then real recordings of real targets
# (tests/e2e/record_budget.py): accuracy across changes of the mean,
# the tight-loop case widening, --max-overhead off, --exact, option errors.
add_executable(record_budget_test ${CMAKE_CURRENT_LIST_DIR}/e2e/record_budget_test.c)
target_include_directories(record_budget_test PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(record_budget_test PRIVATE ms_record ms_testlib)
ms_add_test(NAME record_budget_unit TIMEOUT 60 LABELS unit record COMMAND record_budget_test)

find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  foreach(_s usage accuracy tight off exact)
    ms_add_test(NAME record_budget_${_s} TIMEOUT 300 LABELS e2e record
                COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/record_budget.py
                        --memspy $<TARGET_FILE:memspy> --mix $<TARGET_FILE:memspy-rec-target>
                        --tight $<TARGET_FILE:memspy-budget-tight> --scenario ${_s}
                        --workdir ${CMAKE_CURRENT_BINARY_DIR}/record-budget)
  endforeach()
else()
  message(WARNING "python3 not found: the record budget tests are not built")
endif()
