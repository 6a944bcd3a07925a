# memspy-symtest (the demo service) for tests/symbols.cmake, and what a
# distribution makes of it: a stripped copy (GNU build id kept), its separate
# debug file (objcopy --only-keep-debug, found by build id), and a stripped
# copy carrying MiniDebugInfo (.gnu_debugdata: an xz'd ELF with only the
# symbol table, as Fedora ships its binaries).
add_executable(memspy-symtest ${CMAKE_CURRENT_LIST_DIR}/demo/demo_service.c)
target_compile_options(memspy-symtest PRIVATE -O2 -g)
target_link_options(memspy-symtest PRIVATE -Wl,--build-id)
target_link_libraries(memspy-symtest PRIVATE pthread)
set(_st ${CMAKE_CURRENT_BINARY_DIR}/memspy-symtest)
add_custom_command(OUTPUT ${_st}.stripped ${_st}.debug ${_st}.minidebug
  COMMAND ${CMAKE_OBJCOPY} --only-keep-debug $<TARGET_FILE:memspy-symtest> ${_st}.debug
  COMMAND ${CMAKE_STRIP} --strip-all -o ${_st}.stripped $<TARGET_FILE:memspy-symtest>
  COMMAND ${CMAKE_OBJCOPY} --only-keep-debug --strip-debug $<TARGET_FILE:memspy-symtest>
          ${_st}.mini
  COMMAND xz -f ${_st}.mini
  COMMAND ${CMAKE_OBJCOPY} --add-section .gnu_debugdata=${_st}.mini.xz ${_st}.stripped
          ${_st}.minidebug
  DEPENDS memspy-symtest VERBATIM)
add_custom_target(memspy-symtest-variants ALL
                  DEPENDS ${_st}.stripped ${_st}.debug ${_st}.minidebug)
