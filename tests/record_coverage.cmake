# Allocator coverage of `memspy record` (tests/e2e/record_coverage.py drives
# the memspy-cov-* targets of tests/targets/record_coverage.cmake): C++
# operator new/delete, the memalign family, preloaded jemalloc/tcmalloc, an
# executable's own malloc, glibc's nested entries and edge cases.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  set(_cov_drv ${CMAKE_CURRENT_LIST_DIR}/e2e/record_coverage.py)
  foreach(_s cxx-exact cxx-live cxx-sampled sampled-live memalign-exact memalign-live nested leaves totals edge
             failed-alloc jemalloc tcmalloc jemalloc-memalign tcmalloc-memalign jemalloc-cxx
             tcmalloc-cxx jemalloc-cxx-live tcmalloc-cxx-live exe-malloc)
    ms_add_test(NAME record_coverage_${_s} TIMEOUT 300 LABELS e2e record coverage
                COMMAND ${Python3_EXECUTABLE} ${_cov_drv} --memspy $<TARGET_FILE:memspy>
                        --cov-c $<TARGET_FILE:memspy-cov-c> --cov-cxx $<TARGET_FILE:memspy-cov-cxx>
                        --cov-bump $<TARGET_FILE:memspy-cov-bump> --scenario ${_s}
                        --workdir ${CMAKE_CURRENT_BINARY_DIR}/record-coverage)
  endforeach()
  # Bugs these tests found, fixed and re-enabled: the sampled-pointer table
  # hash, nested entries counted twice, --exact countdown wrapping after huge
  # requests, and (jemalloc/tcmalloc-cxx-live) every aligned operator new shown
  # as leaked under a preloaded jemalloc/tcmalloc, whose 3-argument aligned
  # sized deletes were left unprobed (217,600 B).
else()
  message(WARNING "python3 not found: the record coverage tests are not built")
endif()
