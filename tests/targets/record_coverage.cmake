# Programs the allocator-coverage tests of `memspy record` profile
# (tests/record_coverage.cmake, tests/e2e/record_coverage.py). Same flags as
# memspy-rec-target: the announced stacks must be the real ones.
set(_cov_flags -O2 -g -fno-optimize-sibling-calls -fno-omit-frame-pointer)
set(_cov_common ${CMAKE_CURRENT_LIST_DIR}/cov_common/cov_main.c
                ${CMAKE_CURRENT_LIST_DIR}/cov_common/cov_util.c)

# C: malloc family, memalign family, glibc's nested entries, edge cases.
file(GLOB _cov_c_src CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/cov_c/*.c)
add_executable(memspy-cov-c ${_cov_c_src} ${_cov_common})
target_include_directories(memspy-cov-c PRIVATE ${CMAKE_CURRENT_LIST_DIR}/cov_common)
target_compile_options(memspy-cov-c PRIVATE ${_cov_flags})
target_link_libraries(memspy-cov-c PRIVATE pthread)

# The same sites, with the allocator defined (and exported) by the executable.
add_executable(memspy-cov-bump ${_cov_c_src} ${_cov_common}
                               ${CMAKE_CURRENT_LIST_DIR}/cov_bump/bump.c)
target_include_directories(memspy-cov-bump PRIVATE ${CMAKE_CURRENT_LIST_DIR}/cov_common)
target_compile_options(memspy-cov-bump PRIVATE ${_cov_flags} -fno-builtin)
target_link_options(memspy-cov-bump PRIVATE -rdynamic)
target_link_libraries(memspy-cov-bump PRIVATE pthread)

# C++: operator new/delete in all forms, std::vector, std::string.
file(GLOB _cov_cxx_src CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/cov_cxx/*.cc)
add_executable(memspy-cov-cxx ${_cov_cxx_src} ${_cov_common})
target_include_directories(memspy-cov-cxx PRIVATE ${CMAKE_CURRENT_LIST_DIR}/cov_common)
target_compile_options(memspy-cov-cxx PRIVATE ${_cov_flags})
set_target_properties(memspy-cov-cxx PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON)
target_link_libraries(memspy-cov-cxx PRIVATE pthread)
