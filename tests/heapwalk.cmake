# memspy dump / heapwalk tests: e2e against real targets, unit tests on synthetic heaps, fuzzer.
get_property(_hw_before DIRECTORY PROPERTY TESTS)
add_executable(dump_e2e ${CMAKE_CURRENT_LIST_DIR}/e2e/dump_e2e.c)
target_link_libraries(dump_e2e PRIVATE PkgConfig::JANSSON)

set(_d $<TARGET_FILE:dump_e2e>)
set(_m $<TARGET_FILE:memspy>)
set(_t $<TARGET_FILE:heap_mallinfo>)
# Exactness: all nine mallinfo2() fields, with DWARF and without, under tunables.
ms_add_test(NAME dump_mallinfo_dwarf TIMEOUT 120
  COMMAND ${_d} mallinfo ${_m} --expect layout_source=dwarf --expect walk_source=snapshot
          -- ${_t} 4 4000)
# The same walk with the target stopped throughout (no snapshot).
ms_add_test(NAME dump_mallinfo_nosnapshot TIMEOUT 120
  COMMAND ${_d} mallinfo ${_m} --arg --no-snapshot --expect walk_source=stopped -- ${_t} 4 4000)
ms_add_test(NAME dump_mallinfo_nosnapshot_nodebug TIMEOUT 120
  COMMAND ${_d} mallinfo ${_m} --arg --no-snapshot --arg --no-debuginfo
          --expect walk_source=stopped --expect symbol_source=heuristic -- ${_t} 4 4000)
ms_add_test(NAME dump_mallinfo_nodebug TIMEOUT 120
  COMMAND ${_d} mallinfo ${_m} --arg --no-debuginfo --expect layout_source=table
          --expect symbol_source=heuristic -- ${_t} 4 4000)
ms_add_test(NAME dump_mallinfo_notcache TIMEOUT 120
  COMMAND ${_d} mallinfo ${_m} --env GLIBC_TUNABLES=glibc.malloc.tcache_count=0 -- ${_t} 4 4000)
ms_add_test(NAME dump_mallinfo_notcache_nodebug TIMEOUT 120
  COMMAND ${_d} mallinfo ${_m} --arg --no-debuginfo
          --env GLIBC_TUNABLES=glibc.malloc.tcache_count=0 -- ${_t} 4 4000)
ms_add_test(NAME dump_mallinfo_mmap4k TIMEOUT 120
  COMMAND ${_d} mallinfo ${_m} --env GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4096
          -- ${_t} 4 4000)
ms_add_test(NAME dump_mallinfo_mmap4k_nodebug TIMEOUT 120
  COMMAND ${_d} mallinfo ${_m} --arg --no-debuginfo
          --env GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4096 -- ${_t} 4 4000)
ms_add_test(NAME dump_mallinfo_8threads TIMEOUT 120
  COMMAND ${_d} mallinfo ${_m} -- ${_t} 8 2000)
# The layout read from DWARF is cached per libc build-id: a cold run fills the
# cache, a warm one uses it; both exact. (The other tests read DWARF afresh.)
set(_cache ${CMAKE_CURRENT_BINARY_DIR}/dwarf-cache-test)
ms_add_test(NAME dump_mallinfo_dwarf_cache TIMEOUT 200
  COMMAND sh -c "rm -rf \"$1\" && \"$2\" mallinfo \"$3\" --expect layout_source=dwarf -- \"$4\" 4 2000 && ls \"$1\"/memspy/dwarf-* && \"$2\" mallinfo \"$3\" --arg -vv --expect layout_source=dwarf -- \"$4\" 4 2000 2>&1 | tee /dev/stderr | grep -q 'from DWARF (cached)'"
          sh ${_cache} ${_d} ${_m} ${_t})
set_tests_properties(dump_mallinfo_dwarf_cache PROPERTIES ENVIRONMENT XDG_CACHE_HOME=${_cache})
# A daemonized, pre-forking server (nginx's shape): after the forks [heap] and the
# thread heaps span several adjacent mappings; master and each worker dump exactly.
ms_add_test(NAME dump_prefork_daemon TIMEOUT 150
  COMMAND ${_d} prefork ${_m} --procs 3 -- $<TARGET_FILE:heap_prefork> 2 3000)
ms_add_test(NAME dump_prefork_daemon_nosnapshot_nodebug TIMEOUT 150
  COMMAND ${_d} prefork ${_m} --procs 3 --arg --no-snapshot --arg --no-debuginfo
          -- $<TARGET_FILE:heap_prefork> 2 3000)
# Corruption, in a forked copy of the target: exit 1, errors[] with addresses, totals,
# and the copy still exits 0.
ms_add_test(NAME dump_corrupt_size TIMEOUT 120
  COMMAND ${_d} corrupt ${_m} --expect bad_chunk -- ${_t} 4 2000 size)
ms_add_test(NAME dump_corrupt_fastcycle TIMEOUT 120
  COMMAND ${_d} corrupt ${_m} --expect fastbin_cycle -- ${_t} 4 2000 fastcycle)
ms_add_test(NAME dump_corrupt_tcachenext TIMEOUT 120
  COMMAND ${_d} corrupt ${_m} --expect bad_tcache_entry -- ${_t} 4 2000 tcachenext)
# Not glibc malloc: a clear error naming what was found, exit 2, and an RSS summary.
set(_f $<TARGET_FILE:heap_foreign>)
foreach(_a jemalloc:libjemalloc.so.2 tcmalloc:libtcmalloc_minimal.so.4 mimalloc:libmimalloc.so.2)
  string(REPLACE ":" ";" _a ${_a})
  list(GET _a 0 _name)
  list(GET _a 1 _lib)
  find_file(_path_${_name} ${_lib} PATHS /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib NO_DEFAULT_PATH)
  if(_path_${_name})
    ms_add_test(NAME dump_foreign_${_name} TIMEOUT 60
      COMMAND ${_d} foreign ${_m} --env LD_PRELOAD=${_path_${_name}} --expect ${_name} -- ${_f})
  else()
    message(STATUS "dump_foreign_${_name}: ${_lib} not installed (scripts/install-deps.sh installs it)")
  endif()
endforeach()
ms_add_test(NAME dump_foreign_static TIMEOUT 60
  COMMAND ${_d} foreign ${_m} --expect "statically linked glibc" -- $<TARGET_FILE:heap_foreign_static>)
if(MS_MUSL_GCC)
  ms_add_test(NAME dump_foreign_musl TIMEOUT 60
    COMMAND ${_d} foreign ${_m} --expect musl -- ${CMAKE_BINARY_DIR}/tests/targets/heap_foreign_musl)
endif()

# The walker on synthetic memory images (no ptrace).
add_executable(test_heap_walk ${CMAKE_CURRENT_LIST_DIR}/unit/test_heap_walk.c)
target_link_libraries(test_heap_walk PRIVATE ms_heapwalk ms_attach ms_common ms_testlib)
ms_add_test(NAME heap_walk_synthetic TIMEOUT 30 COMMAND test_heap_walk)

# libFuzzer on random damage to the synthetic heap, a short fixed run (clang only).
find_program(MS_CLANG NAMES clang-14 clang)
if(MS_CLANG)
  file(GLOB _hw_src CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/heapwalk/*.c)
  # The leak scan needs the module table and libstdc++'s demangler: fuzzed on its own.
  list(FILTER _hw_src EXCLUDE REGEX "leakscan\\.c$")
  add_custom_command(OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/fuzz_heapwalk
    COMMAND ${MS_CLANG} -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE
            -I${PROJECT_SOURCE_DIR} -o ${CMAKE_CURRENT_BINARY_DIR}/fuzz_heapwalk
            ${CMAKE_CURRENT_LIST_DIR}/fuzz/fuzz_heapwalk.c ${_hw_src}
            ${MS_FUZZ_READERS_SRC} ${MS_FUZZ_READERS_LIBS}
    DEPENDS ${CMAKE_CURRENT_LIST_DIR}/fuzz/fuzz_heapwalk.c ${CMAKE_CURRENT_LIST_DIR}/unit/heap_synth.h
            ${_hw_src} ${MS_FUZZ_READERS_SRC}
    VERBATIM)
  add_custom_target(fuzz_heapwalk ALL DEPENDS ${CMAKE_CURRENT_BINARY_DIR}/fuzz_heapwalk)
  ms_add_test(NAME heap_walk_fuzz TIMEOUT 120
    COMMAND ${CMAKE_CURRENT_BINARY_DIR}/fuzz_heapwalk -max_total_time=30 -timeout=10 -error_exitcode=1
            -rss_limit_mb=1024 -max_len=4096)
endif()

# memspy dump writes its DWARF cache under XDG_CACHE_HOME: keep the tests' out of $HOME,
# and read DWARF afresh in all but the cache test.
get_property(_hw_tests DIRECTORY PROPERTY TESTS)
foreach(_t ${_hw_tests})
  if(_t MATCHES "^dump_" AND NOT _t IN_LIST _hw_before AND NOT _t STREQUAL "dump_mallinfo_dwarf_cache")
    set_tests_properties(${_t} PROPERTIES ENVIRONMENT "MEMSPY_NO_CACHE=1")
  endif()
endforeach()

# The real nginx (Debian's), daemonized and pre-forking, after a bounded ab load and a
# reload: master and workers dump with no problems and equal gdb's print mallinfo2().
# Skips (77) without nginx, ab or gdb; ports 17200-17299.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  ms_add_test(NAME dump_nginx_prefork TIMEOUT 300 LABELS e2e servers
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/dump_nginx.py
            --memspy $<TARGET_FILE:memspy> --port-base 17200)
else()
  message(WARNING "python3 not found: dump_nginx_prefork is not built")
endif()
# dump -o picks the format by extension: .json is JSON, record's formats are refused
# (tests/e2e/dump_output_ext.py, on Debian's python3).
if(Python3_FOUND)
  ms_add_test(NAME dump_output_ext TIMEOUT 120 LABELS e2e
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/dump_output_ext.py
            --memspy $<TARGET_FILE:memspy>)
endif()
