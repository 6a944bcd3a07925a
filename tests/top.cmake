# End-to-end tests of `memspy top` (tests/e2e/top_e2e.py drives
# memspy-top-target, a self-checking child with a known mix): in a tmux
# pane (keys, resize, q / Ctrl-C / SIGTERM, the terminal restored) and
# with stdout to a pipe.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  foreach(_s usage tty tty-ctrl-c tty-sigterm pipe pipe-live)
    ms_add_test(NAME top_${_s} TIMEOUT 180 LABELS e2e top
                COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/top_e2e.py
                        --memspy $<TARGET_FILE:memspy>
                        --target $<TARGET_FILE:memspy-top-target> --scenario ${_s}
                        --workdir ${CMAKE_CURRENT_BINARY_DIR}/top-e2e)
  endforeach()
else()
  message(WARNING "python3 not found: the top end-to-end tests are not built")
endif()
