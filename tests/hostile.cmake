# SPDX-License-Identifier: MIT
# The target attacks memspy's pages in it (tests/e2e/hostile_e2e.py drives the
# real binary against memspy-hostile-target): random bytes over every new
# writable anonymous mapping near libc every 20 ms, an munmap or a
# PROT_NONE of memspy's region mid-recording, fork+exec and posix_spawn as
# fast as it can. memspy must end normally within its memory bound, report
# the tampering, print no impossible figure, and the target must survive.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  set(_hostile_drv ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/hostile_e2e.py
                   --memspy $<TARGET_FILE:memspy> --target $<TARGET_FILE:memspy-hostile-target>
                   --workdir ${CMAKE_CURRENT_BINARY_DIR}/hostile-e2e)
  ms_add_test(NAME record_hostile_scribble TIMEOUT 300 LABELS record hostile
              COMMAND ${_hostile_drv} --mode scribble --trials 3)
  ms_add_test(NAME record_hostile_unmap TIMEOUT 300 LABELS record hostile
              COMMAND ${_hostile_drv} --mode unmap --trials 2)
  ms_add_test(NAME record_hostile_protect TIMEOUT 300 LABELS record hostile
              COMMAND ${_hostile_drv} --mode protect --trials 2)
  ms_add_test(NAME record_hostile_forkexec TIMEOUT 300 LABELS record hostile
              COMMAND ${_hostile_drv} --mode forkexec --trials 2)
  # Random recursions up to 400 deep: a distinct stack per sample, deeper than
  # the stack copy (16 KiB) and the frame cap (256): memory stays bounded.
  ms_add_test(NAME record_hostile_deep TIMEOUT 300 LABELS record hostile
              COMMAND ${_hostile_drv} --mode deep --trials 1 --seconds 8)
endif()


# A module whose file name holds escape sequences: record's summary names the
# probed entry points by it, with every control character made '?'.
if(Python3_FOUND)
  ms_add_test(NAME record_hostile_names TIMEOUT 300 LABELS record hostile
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/hostile_names.py
            --memspy $<TARGET_FILE:memspy> --target $<TARGET_FILE:memspy-rec-target>
            --scenario probed-names --workdir ${CMAKE_CURRENT_BINARY_DIR}/hostile-names)
endif()

# /proc/PID/status of a process with 65,536 supplementary groups (~450 KB):
# the lines after Groups (NSpid, Vm*, Threads, Sig*, Seccomp) must still be read.
add_executable(test_status_groups ${CMAKE_CURRENT_LIST_DIR}/unit/test_status_groups.c)
target_link_libraries(test_status_groups PRIVATE ms_attach ms_common ms_testlib)
ms_add_test(NAME status_groups TIMEOUT 60 LABELS attach unit hostile COMMAND test_status_groups)

# The module file a FIFO (tests/e2e/fifo_module.sh, record's variant in
# tests/inputs.cmake): dump without CAP_SYS_ADMIN, the process stopped in place
# (its quiesce unwinds threads with libdwfl) and its leaks scanned, ends by itself.
ms_add_test(NAME dump_fifo_module TIMEOUT 120 LABELS heapwalk e2e hostile
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/e2e/fifo_module.sh $<TARGET_FILE:memspy>
          $<TARGET_FILE:fifo_module> dump)

# A module replaced on disk while mapped, memspy without CAP_SYS_ADMIN (so it
# opens files through /proc/PID/root): the other file is refused and named,
# never read as the module (before memspy starts, and 1 s into recording).
ms_add_test(NAME record_hostile_replaced TIMEOUT 300 LABELS record e2e hostile
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/e2e/hostile_replaced.sh $<TARGET_FILE:memspy>
          $<TARGET_FILE:memspy-hostile-replaced> $<TARGET_FILE:memspy-hostile-mod-original>
          $<TARGET_FILE:memspy-hostile-mod-replaced>)

# A maps file over 64 MiB: dump refuses it, naming the bound.
ms_add_test(NAME dump_hostile_maps TIMEOUT 300 LABELS heapwalk e2e hostile
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/e2e/hostile_maps.sh $<TARGET_FILE:memspy>
          $<TARGET_FILE:memspy-hostile-maps>)

# A process title (its command line, rewritten in place) with C1 CSI, ESC and
# BEL: ms_proc_title, which cmd/ prints on terminals, keeps none of them.
add_executable(test_title_terminal ${CMAKE_CURRENT_LIST_DIR}/unit/test_title_terminal.c)
target_link_libraries(test_title_terminal PRIVATE ms_attach ms_common ms_testlib)
ms_add_test(NAME title_terminal TIMEOUT 30 LABELS attach unit hostile COMMAND test_title_terminal)
