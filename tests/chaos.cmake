# SPDX-License-Identifier: MIT
# Survival tests of `memspy record` (tests/e2e/chaos_e2e.py drives the real
# binary against memspy-chaos-target): SIGKILL at random moments (seeded; the
# seed is printed, rerun with --seed), during probe installation and removal,
# SIGINT mid-run with the entry bytes compared to the file, fork and thread
# churn while probed, memspy killed at each instant of a remote syscall. The
# target must always pass its self-check.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  set(_chaos_drv ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/chaos_e2e.py
                 --memspy $<TARGET_FILE:memspy> --target $<TARGET_FILE:memspy-chaos-target>
                 --workdir ${CMAKE_CURRENT_BINARY_DIR}/chaos-e2e)
  ms_add_test(NAME chaos_selftest TIMEOUT 60 LABELS record chaos
              COMMAND ${_chaos_drv} --scenario selftest)
  ms_add_test(NAME chaos_sigint TIMEOUT 300 LABELS record chaos
              COMMAND ${_chaos_drv} --scenario sigint)
  ms_add_test(NAME chaos_fork TIMEOUT 300 LABELS record chaos
              COMMAND ${_chaos_drv} --scenario fork)
  ms_add_test(NAME chaos_threads TIMEOUT 300 LABELS record chaos
              COMMAND ${_chaos_drv} --scenario threads)
  ms_add_test(NAME chaos_kill TIMEOUT 600 LABELS record chaos
              COMMAND ${_chaos_drv} --scenario kill --trials 50 --iters 100000)
  ms_add_test(NAME chaos_install_kill TIMEOUT 300 LABELS record chaos
              COMMAND ${_chaos_drv} --scenario install-kill --trials 12 --iters 100000)
  ms_add_test(NAME chaos_remove_kill TIMEOUT 300 LABELS record chaos
              COMMAND ${_chaos_drv} --scenario remove-kill --trials 12 --iters 100000)
  # SIGKILL of memspy mid-record: its watchdog puts the code and the SIGTRAP
  # action back; with the watchdog held to disarming, the next memspy does.
  ms_add_test(NAME chaos_reclaim TIMEOUT 600 LABELS record chaos
              COMMAND ${_chaos_drv} --scenario reclaim --trials 8 --iters 300000)
  # memspy SIGKILLs itself (MEMSPY_TEST_KILL_AT, attach/remote.c) at each
  # instant of each remote syscall made through the stub page's trampoline,
  # in install and removal: the target must live on every time.
  ms_add_test(NAME chaos_rsys_kill TIMEOUT 600 LABELS record chaos
              COMMAND ${_chaos_drv} --scenario rsys-kill --iters 100000)
else()
  message(WARNING "python3 not found: the chaos (survival) tests are not built")
endif()
