# unwind: end-to-end stacks of real targets with each backend, and hostile copies.
add_executable(unwind_stack ${CMAKE_CURRENT_LIST_DIR}/e2e/unwind_stack.c)
target_link_libraries(unwind_stack PRIVATE ms_unwind ms_attach ms_common ms_testlib)
add_executable(test_unwind_hostile ${CMAKE_CURRENT_LIST_DIR}/unit/test_unwind_hostile.c)
target_link_libraries(test_unwind_hostile PRIVATE ms_unwind ms_attach ms_common ms_testlib)

set(_us $<TARGET_FILE:unwind_stack>)
ms_add_test(NAME unwind_fp TIMEOUT 60 LABELS unwind
  COMMAND ${_us} $<TARGET_FILE:unwind_fp_target> asm elfutils libunwind fp)
ms_add_test(NAME unwind_fp_libc TIMEOUT 60 LABELS unwind
  COMMAND ${_us} $<TARGET_FILE:unwind_fp_target> libc elfutils libunwind)
ms_add_test(NAME unwind_cfi TIMEOUT 60 LABELS unwind
  COMMAND ${_us} $<TARGET_FILE:unwind_cfi_target> asm elfutils libunwind)
ms_add_test(NAME unwind_cfi_libc TIMEOUT 60 LABELS unwind
  COMMAND ${_us} $<TARGET_FILE:unwind_cfi_target> libc elfutils libunwind)
ms_add_test(NAME unwind_cxx TIMEOUT 60 LABELS unwind
  COMMAND ${_us} $<TARGET_FILE:unwind_cxx_target> - elfutils libunwind fp)
ms_add_test(NAME unwind_inline TIMEOUT 60 LABELS unwind
  COMMAND ${_us} $<TARGET_FILE:unwind_inline_target> - elfutils libunwind)
ms_add_test(NAME unwind_hostile TIMEOUT 120 LABELS unwind
  COMMAND $<TARGET_FILE:test_unwind_hostile>)
