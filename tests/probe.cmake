# SPDX-License-Identifier: MIT
# Probe engine tests: relocation unit tests, and e2e runs against real targets.
add_executable(test_probe_decode ${CMAKE_CURRENT_LIST_DIR}/unit/test_probe_decode.c)
target_link_libraries(test_probe_decode PRIVATE ms_attach)
ms_add_test(NAME probe_decode TIMEOUT 30 COMMAND test_probe_decode LABELS unit)
