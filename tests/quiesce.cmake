# memspy dump of processes whose threads only malloc and free: the threads
# caught inside malloc are let out of it before the snapshot (attach/quiesce.c),
# so every dump is complete; a parked moment equals the program's mallinfo2
# (tests/e2e/quiesce_e2e.py). diein: memspy SIGKILLs itself mid-quiesce;
# giveup: rounds that give up with return slots in flight, then the fallback.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  set(_q ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/quiesce_e2e.py
      --memspy $<TARGET_FILE:memspy> --target $<TARGET_FILE:quiesce_busy>)
  ms_add_test(NAME dump_quiesce_fresh TIMEOUT 300 COMMAND ${_q} fresh --n 20)
  ms_add_test(NAME dump_quiesce_long TIMEOUT 300 COMMAND ${_q} long --n 20)
  ms_add_test(NAME dump_quiesce_fork TIMEOUT 300 COMMAND ${_q} long --n 15 --fork)
  ms_add_test(NAME dump_quiesce_long_stopped TIMEOUT 300 COMMAND ${_q} long --n 10 --extra=--no-snapshot)
  ms_add_test(NAME dump_quiesce_diein TIMEOUT 300 COMMAND ${_q} diein)
  ms_add_test(NAME dump_quiesce_giveup TIMEOUT 300 COMMAND ${_q} giveup --n 10)
else()
  message(WARNING "python3 not found: the dump quiescing tests are not built")
endif()
# Debian's python3 starting a thread per millisecond: a dump catches one
# inside clone(), where libc's .eh_frame ends; quiesce must not make libdw
# load libc's whole DWARF inside the pause (tests/e2e/dump_python_threads.py).
if(Python3_FOUND)
  ms_add_test(NAME dump_python_threads TIMEOUT 300 LABELS e2e servers
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/dump_python_threads.py
            --memspy $<TARGET_FILE:memspy>)
endif()
