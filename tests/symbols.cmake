# What fleet tools get from memspy (tests/e2e/symbols_e2e.py): pprof read by
# the real `go tool pprof`, and names for stripped programs from separate debug
# info (.build-id folder, /usr/lib/debug/.build-id itself when it can be
# written, a local debuginfod server, MiniDebugInfo).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  set(_st ${CMAKE_BINARY_DIR}/tests/targets/memspy-symtest)
  foreach(_s pprof pprof-stripped build-id-dir build-id-system debuginfod debuginfod-silent minidebuginfo)
    ms_add_test(NAME symbols_${_s} TIMEOUT 400 LABELS e2e symbols
                COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/symbols_e2e.py
                        --memspy $<TARGET_FILE:memspy> --target ${_st}
                        --stripped ${_st}.stripped --debug ${_st}.debug
                        --minidebug ${_st}.minidebug --scenario ${_s}
                        --workdir ${CMAKE_CURRENT_BINARY_DIR}/symbols-e2e)
    # build-id-system puts the debug file in the system's folder for a moment:
    # the others, some of which want the stripped program nameless, wait for it.
    set_tests_properties(symbols_${_s} PROPERTIES RESOURCE_LOCK memspy_symtest_debug)
  endforeach()
endif()
