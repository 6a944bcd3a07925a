# SPDX-License-Identifier: MIT
# memspy record --interval (one file per interval, --keep, name patterns) and
# --probe-free, against memspy-interval-leak (tests/e2e/interval_e2e.py).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  foreach(_s diff keep boundary formats usage probe-free)
    ms_add_test(NAME record_interval_${_s} TIMEOUT 240 LABELS e2e record
                COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/interval_e2e.py
                        --memspy $<TARGET_FILE:memspy>
                        --target $<TARGET_FILE:memspy-interval-leak>
                        --scenario ${_s} --workdir ${CMAKE_CURRENT_BINARY_DIR}/record-interval)
  endforeach()
endif()
