# Allocator coverage of `memspy record` (tests/e2e/record_coverage.py drives
# the memspy-cov-* targets of tests/targets/record_coverage.cmake): C++
# operator new/delete, the memalign family, preloaded jemalloc/tcmalloc, an
# executable's own malloc, glibc's nested entries and edge cases.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  set(_cov_drv ${CMAKE_CURRENT_LIST_DIR}/e2e/record_coverage.py)
  foreach(_s cxx-exact cxx-live cxx-sampled sampled-live memalign-exact memalign-live nested edge
             failed-alloc jemalloc tcmalloc jemalloc-memalign tcmalloc-memalign jemalloc-cxx
             tcmalloc-cxx jemalloc-cxx-live tcmalloc-cxx-live exe-malloc)
    ms_add_test(NAME record_coverage_${_s} TIMEOUT 300 LABELS e2e record coverage
                COMMAND ${Python3_EXECUTABLE} ${_cov_drv} --memspy $<TARGET_FILE:memspy>
                        --cov-c $<TARGET_FILE:memspy-cov-c> --cov-cxx $<TARGET_FILE:memspy-cov-cxx>
                        --cov-bump $<TARGET_FILE:memspy-cov-bump> --scenario ${_s}
                        --workdir ${CMAKE_CURRENT_BINARY_DIR}/record-coverage)
  endforeach()
  # Known memspy bugs these tests found (they fail until fixed; run them with
  # `ctest -R record_coverage_NAME` after a fix and re-enable them here):
  # - sampled pointer table hash (attach/probe_stubs.S HASHK, a sign-extended
  #   32-bit multiplier): all blocks of one heap fall into 1-3 of the 1024
  #   buckets, so with more than ~8 sampled blocks alive per arena inserts fail,
  #   frees are not matched, --live over-reports and record exits 1.
  # - entry points that call another probed entry are recorded twice: glibc's
  #   posix_memalign/memalign/aligned_alloc with alignment <= 16 (they call
  #   malloc), tcmalloc's valloc/pvalloc/posix_memalign; the inner event's
  #   stack also loses the caller (it goes through the outer stub).
  # - --exact never refills the countdown: sizes summing past 2^63 (a failed
  #   malloc(SIZE_MAX/4) twice, an overflowing calloc) wrap it positive and
  #   every later call on that stack slot goes unrecorded.
  # - jemalloc/tcmalloc sized aligned delete (_ZdlPvmSt11align_val_t) is not
  #   probed, so --live shows every aligned new as leaked.
  set_tests_properties(record_coverage_cxx-sampled record_coverage_sampled-live
                       record_coverage_nested record_coverage_tcmalloc-memalign
                       record_coverage_edge record_coverage_failed-alloc
                       record_coverage_jemalloc-cxx-live record_coverage_tcmalloc-cxx-live
                       PROPERTIES DISABLED TRUE)
else()
  message(WARNING "python3 not found: the record coverage tests are not built")
endif()
