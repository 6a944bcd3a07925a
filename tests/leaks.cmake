# memspy dump --leaks: e2e against C++ and C targets that print what they leaked and kept.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  set(_lk ${CMAKE_CURRENT_LIST_DIR}/e2e/leaks_e2e.py)
  ms_add_test(NAME dump_leaks TIMEOUT 120 LABELS e2e leaks
    COMMAND ${Python3_EXECUTABLE} ${_lk} --memspy $<TARGET_FILE:memspy>
            --target $<TARGET_FILE:leaks_cxx>)
  # Class names from the symbol tables alone: no DWARF in the target.
  ms_add_test(NAME dump_leaks_nodebug TIMEOUT 120 LABELS e2e leaks
    COMMAND ${Python3_EXECUTABLE} ${_lk} --memspy $<TARGET_FILE:memspy>
            --target $<TARGET_FILE:leaks_cxx_nodebug>)
  # The C cases: every group untyped, held to its size class.
  ms_add_test(NAME dump_leaks_c TIMEOUT 120 LABELS e2e leaks
    COMMAND ${Python3_EXECUTABLE} ${_lk} --memspy $<TARGET_FILE:memspy>
            --target $<TARGET_FILE:leaks_c>)
  # Every batch of the marking shared with the second thread (big heaps only, otherwise).
  ms_add_test(NAME dump_leaks_shared TIMEOUT 120 LABELS e2e leaks
    COMMAND ${Python3_EXECUTABLE} ${_lk} --memspy $<TARGET_FILE:memspy>
            --target $<TARGET_FILE:leaks_cxx>)
  # ... and the word test without AVX2 (the plain loop other machines run).
  set_tests_properties(dump_leaks_shared PROPERTIES ENVIRONMENT
    "MEMSPY_TEST_SCAN_SHARE_BYTES=1;MEMSPY_TEST_SCAN_PLAIN=1")
  # The same scan with the target stopped throughout (no snapshot).
  ms_add_test(NAME dump_leaks_nosnapshot TIMEOUT 120 LABELS e2e leaks
    COMMAND ${Python3_EXECUTABLE} ${_lk} --memspy $<TARGET_FILE:memspy>
            --target $<TARGET_FILE:leaks_cxx> --arg=--no-snapshot)
  # A damaged heap (a forked copy of heap_mallinfo breaks its own): a partial leak
  # report in bounded time, never a hang, and the copy runs on.
  foreach(_mode size fastcycle tcachenext)
    ms_add_test(NAME dump_leaks_corrupt_${_mode} TIMEOUT 120 LABELS e2e leaks
      COMMAND ${Python3_EXECUTABLE} ${_lk} --memspy $<TARGET_FILE:memspy>
              --target $<TARGET_FILE:heap_mallinfo> --corrupt ${_mode})
  endforeach()
else()
  message(WARNING "python3 not found: the leak-scan end-to-end tests are not built")
endif()
if(Python3_FOUND AND CMAKE_STRIP)
  # No symbol table at all: class names from RTTI.
  ms_add_test(NAME dump_leaks_stripped TIMEOUT 120 LABELS e2e leaks
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/leaks_e2e.py
            --memspy $<TARGET_FILE:memspy>
            --target ${CMAKE_BINARY_DIR}/tests/targets/leaks_cxx_stripped --stripped)
endif()
