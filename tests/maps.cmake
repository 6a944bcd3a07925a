# /proc/PID/maps read while the target changes its mappings (Linux >= 6.17 tears
# such reads): never a verdict about the process (tests/e2e/maps_e2e.py). The
# reader itself is tested on fixtures by test_maps (tests/attach.cmake).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  set(_maps ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/maps_e2e.py
      --memspy $<TARGET_FILE:memspy> --target $<TARGET_FILE:maps_churn>)
  ms_add_test(NAME maps_torn_inject TIMEOUT 120 COMMAND ${_maps} inject LABELS attach e2e)
  # 15 dumped and 15 recorded fresh processes.
  ms_add_test(NAME maps_fresh_loop TIMEOUT 600 COMMAND ${_maps} --fresh 15 loop LABELS attach e2e)
else()
  message(WARNING "python3 not found: the maps consistency tests are not built")
endif()
