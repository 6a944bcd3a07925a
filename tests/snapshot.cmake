# memspy dump's copy-on-write snapshot: safety on a busy real target, with and
# without the snapshot, and SIGKILL of memspy at random moments (tests/e2e/snapshot_e2e.py).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  set(_snap ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/snapshot_e2e.py
      --memspy $<TARGET_FILE:memspy> --target $<TARGET_FILE:snapshot_busy>)
  ms_add_test(NAME dump_snapshot_hygiene TIMEOUT 200 COMMAND ${_snap} hygiene)
  ms_add_test(NAME dump_snapshot_hygiene_stopped TIMEOUT 200 COMMAND ${_snap} hygiene --no-snapshot)
  ms_add_test(NAME dump_snapshot_kill TIMEOUT 300 COMMAND ${_snap} kill --heap-mb 192 --trials 24)
  ms_add_test(NAME dump_snapshot_diein TIMEOUT 200 COMMAND ${_snap} diein)
  ms_add_test(NAME dump_snapshot_cgroup_limit TIMEOUT 200 COMMAND ${_snap} cgroup --heap-mb 96)
  # Read libc's DWARF afresh (no per-user cache written from tests).
  set_tests_properties(dump_snapshot_hygiene dump_snapshot_hygiene_stopped dump_snapshot_kill
                       dump_snapshot_diein dump_snapshot_cgroup_limit PROPERTIES ENVIRONMENT MEMSPY_NO_CACHE=1)
else()
  message(WARNING "python3 not found: the dump snapshot tests are not built")
endif()
