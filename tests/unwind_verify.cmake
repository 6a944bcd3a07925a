# The compiled CFI table against libdw: `memspy record` on real targets (C and
# C++, -O2, with and without frame pointers; sampled through the ring and exact
# through stops; calls that end their function) with MEMSPY_VERIFY_UNWIND=1 must report zero mismatches.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  ms_add_test(NAME unwind_verify TIMEOUT 600 LABELS e2e unwind
              COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/unwind_verify.py
                      --memspy $<TARGET_FILE:memspy>
                      --workdir ${CMAKE_CURRENT_BINARY_DIR}/unwind-verify
                      --run $<TARGET_FILE:memspy-rec-target>:mix:3000
                      --run $<TARGET_FILE:memspy-rec-target-nofp>:mix:3000
                      --run $<TARGET_FILE:memspy-cov-cxx>:cxx:300
                      --run $<TARGET_FILE:memspy-cov-cxx-nofp>:cxx:300
                      --run $<TARGET_FILE:memspy-cov-c>:nested:300
                      --run $<TARGET_FILE:memspy-cov-c>:spread:300
                      --run $<TARGET_FILE:memspy-uv-noreturn>:noreturn:20000)
endif()

# The same comparison on random hostile copies (no ptrace: this process's own code).
add_executable(test_unwind_cfi_verify ${CMAKE_CURRENT_LIST_DIR}/unit/test_unwind_cfi_verify.c)
target_link_libraries(test_unwind_cfi_verify PRIVATE ms_unwind ms_attach ms_common)
ms_add_test(NAME unwind_cfi_verify_random TIMEOUT 300 LABELS unit unwind
            COMMAND $<TARGET_FILE:test_unwind_cfi_verify>)
