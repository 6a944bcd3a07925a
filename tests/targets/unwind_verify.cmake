# The record targets again without frame pointers, for the unwind verification
# test (tests/unwind_verify.cmake): the CFI table must match libdw where every
# frame is found by CFI alone, as well as where frames keep rbp.
add_executable(memspy-rec-target-nofp ${_rec_src})
target_compile_options(memspy-rec-target-nofp PRIVATE -O2 -g -fno-optimize-sibling-calls
                       -fomit-frame-pointer)
target_link_libraries(memspy-rec-target-nofp PRIVATE pthread)

add_executable(memspy-cov-cxx-nofp ${_cov_cxx_src} ${_cov_common})
target_include_directories(memspy-cov-cxx-nofp PRIVATE ${CMAKE_CURRENT_LIST_DIR}/cov_common)
target_compile_options(memspy-cov-cxx-nofp PRIVATE -O2 -g -fno-optimize-sibling-calls
                       -fomit-frame-pointer)
set_target_properties(memspy-cov-cxx-nofp PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON)
target_link_libraries(memspy-cov-cxx-nofp PRIVATE pthread)

# Calls that end their function (noreturn): the return address - 1 rule.
add_executable(memspy-uv-noreturn ${CMAKE_CURRENT_LIST_DIR}/unwind_noreturn/uv_noreturn.c)
target_compile_options(memspy-uv-noreturn PRIVATE -O2 -g -fomit-frame-pointer
                       -falign-functions=1 -fno-reorder-functions)
