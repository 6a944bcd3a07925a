# The target's own SIGTRAPs are delivered while memspy is attached.
foreach(_mode walk probe)
  ms_add_test(NAME trap_own_${_mode} TIMEOUT 120 LABELS e2e attach
              COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/e2e/trap_own.sh
                      $<TARGET_FILE:memspy> $<TARGET_FILE:trap_own> ${_mode})
endforeach()
