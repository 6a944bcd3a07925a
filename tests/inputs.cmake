# Hostile inputs that are not fuzzed (doc/INPUTS.md): a process shaping what
# memspy reads, end to end. The fuzzers are in tests/fuzz.cmake.

# A process that maps libc's file again, writable and 64 GiB long: dump
# without libc's debug info searches libc's writable mappings for main_arena
# and allocated each one whole (ASan: out of memory; without it, an abort).
# It must find the real arena and give the exact mallinfo2().
ms_add_test(NAME dump_libc_remapped_nodebug TIMEOUT 120 LABELS heapwalk e2e
  COMMAND $<TARGET_FILE:dump_e2e> mallinfo $<TARGET_FILE:memspy> --arg --no-debuginfo
          --expect symbol_source=heuristic -- $<TARGET_FILE:heap_mallinfo> 4 4000 libcremap)

# Control characters in names the target chose never reach the terminal.
add_executable(test_log_terminal ${CMAKE_CURRENT_LIST_DIR}/unit/test_log_terminal.c)
target_link_libraries(test_log_terminal PRIVATE ms_common)
ms_add_test(NAME log_terminal TIMEOUT 30 LABELS unit COMMAND test_log_terminal)

# A module file replaced by a FIFO (open through /proc/PID/root would block
# for good): memspy record without CAP_SYS_ADMIN ends by itself.
ms_add_test(NAME record_fifo_module TIMEOUT 120 LABELS record e2e
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/e2e/fifo_module.sh $<TARGET_FILE:memspy>
          $<TARGET_FILE:fifo_module>)

# A stripped module's .gnu_debuglink names a FIFO beside it (tests/e2e/debuglink_fifo.sh).
ms_add_test(NAME record_debuglink_fifo TIMEOUT 120 LABELS record e2e hostile
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/e2e/debuglink_fifo.sh $<TARGET_FILE:memspy>
          $<TARGET_FILE:debuglink_fifo> $<TARGET_FILE:ms_dl_alloc>)
