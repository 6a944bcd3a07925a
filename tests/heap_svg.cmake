# memspy dump --leaks --svg: the heap view's numbers against the JSON of the same
# dump, and in headless Chromium (skipped, exit 77, without chromium).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  ms_add_test(NAME dump_heap_svg TIMEOUT 240 LABELS e2e leaks output
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/heap_svg.py
            --memspy $<TARGET_FILE:memspy> --target $<TARGET_FILE:leaks_cxx>
            --work ${CMAKE_CURRENT_BINARY_DIR}/dump_heap_svg)
endif()
