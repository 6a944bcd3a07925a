# Tests of output/ (the profile writers): unit tests, goldens, headless browser.
add_executable(test_output_tree ${CMAKE_CURRENT_LIST_DIR}/unit/test_output_tree.c)
target_link_libraries(test_output_tree PRIVATE ms_output ms_common ms_testlib)
ms_add_test(NAME output_tree TIMEOUT 180 COMMAND test_output_tree LABELS unit output)

# folded in -> any format out; the golden and browser tests drive it
add_executable(test_output_render ${CMAKE_CURRENT_LIST_DIR}/unit/test_output_render.c)
target_link_libraries(test_output_render PRIVATE ms_output ms_common)

# MEMSPY_BLESS=1 ctest -R output_golden rewrites tests/golden/output/*
ms_add_test(NAME output_golden TIMEOUT 60
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/unit/test_output_golden.sh
          $<TARGET_FILE:test_output_render> ${CMAKE_CURRENT_LIST_DIR}/golden/output
          ${CMAKE_CURRENT_BINARY_DIR}/output_golden
  LABELS unit output)

ms_add_test(NAME output_svg_chromium TIMEOUT 260
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/e2e/svg_chromium.sh
          $<TARGET_FILE:test_output_render> ${CMAKE_CURRENT_LIST_DIR}/golden/output/service.folded
          ${CMAKE_CURRENT_BINARY_DIR}/output_svg_chromium
  LABELS e2e output)

ms_add_test(NAME output_pprof_protoc TIMEOUT 60
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/unit/test_output_pprof_protoc.sh
          $<TARGET_FILE:test_output_render> ${CMAKE_CURRENT_LIST_DIR}/golden/output/service.folded
          ${CMAKE_CURRENT_BINARY_DIR}/output_pprof_protoc
  LABELS unit output)
# A memspy killed by SIGKILL leaves OUT.tmp.XXXXXX; the next one writing OUT removes it
# (unlocked and over a minute old) and says so (tests/e2e/afile_stale.py).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  ms_add_test(NAME output_stale_tmp TIMEOUT 180 LABELS e2e output
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/afile_stale.py
            --memspy $<TARGET_FILE:memspy> --workdir ${CMAKE_CURRENT_BINARY_DIR}/afile-stale)
endif()
# An output path that is not a regular file (a FIFO standing in for /dev/null) is written
# in place, never replaced by a rename (tests/e2e/output_special.py).
if(Python3_FOUND)
  ms_add_test(NAME output_special_file TIMEOUT 180 LABELS e2e output
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/output_special.py
            --memspy $<TARGET_FILE:memspy> --workdir ${CMAKE_CURRENT_BINARY_DIR}/output-special)
endif()
