# memspy attaching while the target is inside clone()/fork(): the target must
# run on and see every call succeed (tests/e2e/clone_race_e2e.py).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  foreach(_job record dump)
    foreach(_mode threads fork)
      ms_add_test(NAME clone_race_${_job}_${_mode} TIMEOUT 240 LABELS e2e attach
                  COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/clone_race_e2e.py
                          --memspy $<TARGET_FILE:memspy> --target $<TARGET_FILE:memspy-clone-race>
                          --job ${_job} --mode ${_mode} --rounds 4)
    endforeach()
  endforeach()
else()
  message(WARNING "python3 not found: the clone_race end-to-end tests are not built")
endif()
