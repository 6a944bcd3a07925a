# Tests of attach/: unit tests (no ptrace) and end-to-end tests against real targets.
add_executable(attach_driver ${CMAKE_CURRENT_LIST_DIR}/e2e/attach_driver.c)
target_link_libraries(attach_driver PRIVATE ms_attach ms_common ms_testlib)
foreach(_mode stress signal-int signal-term exit groupstop modules errors)
  ms_add_test(NAME attach_${_mode} TIMEOUT 120
              COMMAND attach_driver ${_mode} $<TARGET_FILE:attach_threads> LABELS attach e2e)
endforeach()
# The diagnoses through the real binary (`memspy record/dump --pid N`).
ms_add_test(NAME attach_cli TIMEOUT 120
            COMMAND attach_driver cli $<TARGET_FILE:attach_threads> $<TARGET_FILE:memspy>
            LABELS attach e2e)
foreach(_t test_maps test_attach_diag test_sched_account)
  add_executable(${_t} ${CMAKE_CURRENT_LIST_DIR}/unit/${_t}.c)
  target_link_libraries(${_t} PRIVATE ms_attach ms_common ms_testlib)
  ms_add_test(NAME ${_t} TIMEOUT 30 COMMAND ${_t} LABELS attach unit)
endforeach()
