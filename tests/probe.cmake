# SPDX-License-Identifier: MIT
# Probe engine tests: relocation unit tests, and e2e runs against real targets.
add_executable(test_probe_decode ${CMAKE_CURRENT_LIST_DIR}/unit/test_probe_decode.c)
target_link_libraries(test_probe_decode PRIVATE ms_attach ms_testlib)
ms_add_test(NAME probe_decode TIMEOUT 30 COMMAND test_probe_decode LABELS unit)

add_executable(probe_driver ${CMAKE_CURRENT_LIST_DIR}/e2e/probe_driver.c)
target_link_libraries(probe_driver PRIVATE ms_attach)
# Exact mode: every call is an event; counts and bytes must equal the target's.
ms_add_test(NAME probe_exact_counts TIMEOUT 120
            COMMAND probe_driver count 0 $<TARGET_FILE:probe_alloc> 300 LABELS e2e)
# Sampled, a stop per sample (64 KiB mean): the weighted total estimates the true bytes.
ms_add_test(NAME probe_sampled_estimate TIMEOUT 120
            COMMAND probe_driver count 65536 $<TARGET_FILE:probe_alloc> 20000 stop LABELS e2e)
# Sampled through the in-target ring (512 KiB mean, no stops): same estimate, few drops.
ms_add_test(NAME probe_ring_estimate TIMEOUT 120
            COMMAND probe_driver count 524288 $<TARGET_FILE:probe_alloc> 40000 LABELS e2e)
# fork() mid-run in the target: parent and child finish and exit 0.
ms_add_test(NAME probe_fork TIMEOUT 120
            COMMAND probe_driver count 0 $<TARGET_FILE:probe_alloc> 300 fork LABELS e2e)
# SIGKILL of the probing process mid-run, 20 times: the target survives, checksum right.
ms_add_test(NAME probe_tracer_killed TIMEOUT 300
            COMMAND probe_driver killtest $<TARGET_FILE:probe_alloc> 3000 20 LABELS e2e)
# Removal and detach while 4 threads allocate: target finishes, bytes restored.
ms_add_test(NAME probe_remove_midrun TIMEOUT 300
            COMMAND probe_driver midremove $<TARGET_FILE:probe_alloc> 30000 10 LABELS e2e)
# A target whose threads block every signal: exact mode (a trap per call) is
# refused with a clear message and the target left unharmed; ring mode records
# it with no trap, even with the ring overflowing (slow drains at a 4 KiB mean:
# lost samples are counted and made up for in the weights), and no thread's
# mask changes (a trap would make the kernel unblock SIGTRAP and reset its action).
ms_add_test(NAME probe_refuse_blocked_sigtrap TIMEOUT 60
            COMMAND probe_driver refuse $<TARGET_FILE:probe_alloc> LABELS e2e)
ms_add_test(NAME probe_ring_blocked_sigtrap TIMEOUT 120
            COMMAND probe_driver count 4096 $<TARGET_FILE:probe_alloc> 20000 blocktrap LABELS e2e)
# Ring mode with fork() mid-run, and with threads born after install (entered
# in the thread table at their first ptrace stop: ring mode never stops them).
ms_add_test(NAME probe_ring_fork TIMEOUT 120
            COMMAND probe_driver count 65536 $<TARGET_FILE:probe_alloc> 3000 fork LABELS e2e)
ms_add_test(NAME probe_ring_late_threads TIMEOUT 120
            COMMAND probe_driver count 524288 $<TARGET_FILE:probe_alloc> 40000 late LABELS e2e)
# C++ operator new/delete: each seen exactly once (no double count through malloc).
ms_add_test(NAME probe_cxx_operators TIMEOUT 120
            COMMAND probe_driver cxx $<TARGET_FILE:probe_cxx> 200 LABELS e2e)
# The target execs while probed: removal writes nothing into the new image.
ms_add_test(NAME probe_exec_while_probed TIMEOUT 60
            COMMAND probe_driver exec $<TARGET_FILE:probe_alloc> LABELS e2e)
# vfork() mid-run: the child shares the text, memspy must not restore it there.
ms_add_test(NAME probe_vfork TIMEOUT 120
            COMMAND probe_driver count 0 $<TARGET_FILE:probe_alloc> 300 vfork LABELS e2e)
# The module table record passes in can be empty or partial (attach read
# /proc/PID/maps while the target changed it): install reads it again
# rather than refuse with "no allocator entry point" (the chaos refusals).
ms_add_test(NAME probe_stale_modules TIMEOUT 60
            COMMAND probe_driver count 0 $<TARGET_FILE:probe_alloc> 300 LABELS e2e)
set_tests_properties(probe_stale_modules PROPERTIES ENVIRONMENT PROBE_DRIVER_EMPTY_MODULES=1)
