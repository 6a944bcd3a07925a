# Targets for memspy dump --leaks: a C++ heap that knows what it leaked and kept.
# Built like production: optimised, one copy with debug info and one without
# (the class names come from the symbol tables, not DWARF).
add_executable(leaks_cxx ${CMAKE_CURRENT_LIST_DIR}/leaks_cxx/leaks_cxx.cc)
target_compile_options(leaks_cxx PRIVATE -O2 -g)
target_link_libraries(leaks_cxx PRIVATE pthread)
add_executable(leaks_cxx_nodebug ${CMAKE_CURRENT_LIST_DIR}/leaks_cxx/leaks_cxx.cc)
target_compile_options(leaks_cxx_nodebug PRIVATE -O2 -g0)
target_link_libraries(leaks_cxx_nodebug PRIVATE pthread)
# Stripped (no .symtab; the executable's vtables are in no .dynsym): class names
# from RTTI (vtable[-1] -> typeinfo -> mangled name).
add_custom_command(OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/leaks_cxx_stripped
  COMMAND ${CMAKE_STRIP} --strip-all -o ${CMAKE_CURRENT_BINARY_DIR}/leaks_cxx_stripped
          $<TARGET_FILE:leaks_cxx_nodebug>
  DEPENDS leaks_cxx_nodebug VERBATIM)
add_custom_target(leaks_cxx_stripped ALL DEPENDS ${CMAKE_CURRENT_BINARY_DIR}/leaks_cxx_stripped)
# The same cases in C (no vtables: every allocation in a size class of its own),
# without debug info.
add_executable(leaks_c ${CMAKE_CURRENT_LIST_DIR}/leaks_c/leaks_c.c)
target_compile_options(leaks_c PRIVATE -O2 -g0)
target_link_libraries(leaks_c PRIVATE pthread)
