# Programs `memspy record --mode walk` tests profile (see tests/walk.cmake).
# -fno-optimize-sibling-calls: the call sites must stay on the stack.
add_executable(memspy-walk-phases ${CMAKE_CURRENT_LIST_DIR}/walk_phases/phases.c)
target_compile_options(memspy-walk-phases PRIVATE -O2 -g)
target_link_libraries(memspy-walk-phases PRIVATE pthread)

file(GLOB _walk_sites_src CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/walk_sites/*.c)
add_executable(memspy-walk-sites ${_walk_sites_src})
target_compile_options(memspy-walk-sites PRIVATE -O2 -g -fno-optimize-sibling-calls)
target_link_libraries(memspy-walk-sites PRIVATE pthread)

# A malloc of its own (not glibc's): walk mode must still sample stacks and RSS.
file(GLOB _walk_own_src CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/walk_own/*.c)
add_executable(memspy-walk-own ${_walk_own_src})
target_compile_options(memspy-walk-own PRIVATE -O2 -g -fno-optimize-sibling-calls -fno-builtin)
target_link_libraries(memspy-walk-own PRIVATE pthread)

# Workers that run malloc/free bursts of a known CPU length between sleeps:
# walk mode's sampling bias against the kernel's accounting (walk_bias).
add_executable(memspy-walk-bursts ${CMAKE_CURRENT_LIST_DIR}/walk_bursts/bursts.c)
target_compile_options(memspy-walk-bursts PRIVATE -O2 -g -fno-optimize-sibling-calls)
target_link_libraries(memspy-walk-bursts PRIVATE pthread)
