# --subprocesses (record and dump) against memspy-prefork-target, a
# pre-forking daemon, and nginx when it is installed (skipped otherwise);
# interval*: --interval's merged files (go tool pprof; the samples behind each
# frame in SVG and speedscope), a recorder killed; ring-loss: many samples
# dropped (a recorder stopped) said first, exit 0; pid-reuse: an exited
# worker's pid taken by a shell outside the tree, whose child is not recorded.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  set(_sp_drv ${CMAKE_CURRENT_LIST_DIR}/e2e/subprocesses_e2e.py)
  foreach(_s record walk sigterm sigkill hint dump nginx pprof interval interval-kill interval-usage
          interval-sigkill interval-samples ring-loss
          pid-reuse)
    ms_add_test(NAME subprocesses_${_s} TIMEOUT 400 LABELS e2e record subprocesses
                COMMAND ${Python3_EXECUTABLE} ${_sp_drv} --memspy $<TARGET_FILE:memspy>
                        --target $<TARGET_FILE:memspy-prefork-target> --scenario ${_s}
                        --workdir ${CMAKE_CURRENT_BINARY_DIR}/subprocesses-e2e)
  endforeach()
else()
  message(WARNING "python3 not found: the --subprocesses end-to-end tests are not built")
endif()
