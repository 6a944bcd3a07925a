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
  # Known memspy bug these tests found (they fail until fixed; run them with
  # `ctest -R record_coverage_NAME` after a fix and re-enable them here):
  # - under LD_PRELOADed jemalloc/tcmalloc, --live shows every aligned
  #   operator new (size_t, std::align_val_t) as leaked (217,600 B).
  # Fixed and re-enabled: the sampled-pointer table hash, nested entries
  # counted twice, --exact countdown wrapping after huge requests.
  set_tests_properties(record_coverage_jemalloc-cxx-live record_coverage_tcmalloc-cxx-live
                       PROPERTIES DISABLED TRUE)
else()
  message(WARNING "python3 not found: the record coverage tests are not built")
endif()
