# Unwinder cost per stack, per backend (prints figures; never pass/fail):
#   unwind_bench $<TARGET_FILE:unwind_deep_fp> $<TARGET_FILE:unwind_deep_cfi>
add_executable(unwind_deep_fp ${CMAKE_CURRENT_LIST_DIR}/unwind_targets/unwind_deep.c)
add_executable(unwind_deep_cfi ${CMAKE_CURRENT_LIST_DIR}/unwind_targets/unwind_deep.c)
foreach(_t unwind_deep_fp unwind_deep_cfi)
  # Like a production build and never sanitized (targets inherit nothing).
  set_target_properties(${_t} PROPERTIES COMPILE_OPTIONS "" LINK_OPTIONS "")
endforeach()
target_compile_options(unwind_deep_fp PRIVATE -O2 -g -fno-omit-frame-pointer)
target_compile_options(unwind_deep_cfi PRIVATE -O2 -g -fomit-frame-pointer)
add_executable(unwind_bench ${CMAKE_CURRENT_LIST_DIR}/unwind_bench.c)
target_link_libraries(unwind_bench PRIVATE ms_unwind ms_attach ms_common)
# Replay of a real recording's stack copies, libdw alone vs the CFI table
# (bench/unwind_replay.sh records the dump and runs it).
add_executable(unwind_replay ${CMAKE_CURRENT_LIST_DIR}/unwind_replay.c)
target_link_libraries(unwind_replay PRIVATE ms_unwind ms_attach ms_common)
