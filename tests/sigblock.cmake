# `memspy record` on processes whose threads block every signal (where a
# probe trap would be fatal): tests/e2e/sigblock_e2e.py drives
# memspy-sigblock-target and Debian's stock redis-server (skipped when absent).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  foreach(_s blocked redis)
    ms_add_test(NAME record_sigblock_${_s} TIMEOUT 240 LABELS e2e record
                COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/sigblock_e2e.py
                        --memspy $<TARGET_FILE:memspy>
                        --sigblock $<TARGET_FILE:memspy-sigblock-target> --scenario ${_s}
                        --workdir ${CMAKE_CURRENT_BINARY_DIR}/sigblock-e2e)
  endforeach()
else()
  message(WARNING "python3 not found: the sigblock end-to-end tests are not built")
endif()
# --exact on Debian's python3 starting threads: glibc's block-all moment around clone() is
# not a thread that blocks SIGTRAP (tests/e2e/exact_threads.py).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  ms_add_test(NAME record_exact_python_threads TIMEOUT 180 LABELS e2e record servers
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/exact_threads.py
            --memspy $<TARGET_FILE:memspy>)
endif()
