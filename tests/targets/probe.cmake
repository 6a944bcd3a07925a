# SPDX-License-Identifier: MIT
# Target of the probe tests (unsanitized, as production code would be).
add_executable(probe_alloc ${CMAKE_CURRENT_LIST_DIR}/probe_alloc/probe_alloc.c)
target_compile_options(probe_alloc PRIVATE -O2 -g)
target_link_libraries(probe_alloc PRIVATE pthread)
# C++: operator new/delete over libstdc++ (the libc probes must see each once).
add_executable(probe_cxx ${CMAKE_CURRENT_LIST_DIR}/probe_cxx/probe_cxx.cc)
target_compile_options(probe_cxx PRIVATE -O2 -g)
target_link_libraries(probe_cxx PRIVATE pthread)
