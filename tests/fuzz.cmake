# libFuzzer targets for what memspy reads from a target (doc/INPUTS.md): the
# unwinder over arbitrary registers and stack bytes, the /proc parsers, and the
# profile writers over hostile frame names. Each runs a short fixed time in
# CI (clang only, as the heap walker's fuzzer in tests/heapwalk.cmake); run one
# longer by hand with e.g. build/tests/fuzz_output -max_total_time=600 DIR.
# The code under test is compiled again here with clang's coverage and
# sanitizers; the rest of memspy is not needed.
# -error_exitcode=1 on every fuzz test: libFuzzer's default, 77, is the
# suite's 'skipped' code (SKIP_RETURN_CODE), so a crash it found passed as a skip.
find_program(MS_CLANG NAMES clang-14 clang)
find_path(MS_EXPAT_H expat.h) # the SVG check parses the flame graph as XML
if(MS_CLANG)
  set(_fz_flags -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I${PROJECT_SOURCE_DIR})
  set(_fz_common ${MS_FUZZ_COMMON_SRC}) # tests/CMakeLists.txt
  set(_fz_dir ${CMAKE_CURRENT_LIST_DIR}/fuzz)
  # libFuzzer adds what it finds to the first corpus directory: one in the
  # build tree, then the seeds from the source tree (read only).
  set(_fz_work ${CMAKE_CURRENT_BINARY_DIR}/fuzz_corpus)
  file(MAKE_DIRECTORY ${_fz_work}/proc ${_fz_work}/unwind ${_fz_work}/output)

  # fuzz_proc: maps, status, stat, ptrace_scope and smaps text.
  set(_fz_proc_src ${_fz_dir}/fuzz_proc.c ${PROJECT_SOURCE_DIR}/heapwalk/smaps.c
                   ${MS_FUZZ_READERS_SRC})
  add_custom_command(OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/fuzz_proc
    COMMAND ${MS_CLANG} ${_fz_flags} -o ${CMAKE_CURRENT_BINARY_DIR}/fuzz_proc
            ${_fz_proc_src} ${MS_FUZZ_READERS_LIBS}
    DEPENDS ${_fz_proc_src} VERBATIM)
  add_custom_target(fuzz_proc ALL DEPENDS ${CMAKE_CURRENT_BINARY_DIR}/fuzz_proc)
  ms_add_test(NAME fuzz_proc TIMEOUT 120 LABELS unit
    COMMAND ${CMAKE_CURRENT_BINARY_DIR}/fuzz_proc -max_total_time=30 -timeout=10 -error_exitcode=1
            -rss_limit_mb=1024 -max_len=16384 ${_fz_work}/proc ${_fz_dir}/corpus/proc)

  # fuzz_unwind: every backend over this process's own modules.
  file(GLOB _fz_unwind_src CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/unwind/*.c)
  list(APPEND _fz_unwind_src ${_fz_dir}/fuzz_unwind.c ${MS_FUZZ_READERS_SRC})
  add_custom_command(OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/fuzz_unwind
    COMMAND ${MS_CLANG} ${_fz_flags} -o ${CMAKE_CURRENT_BINARY_DIR}/fuzz_unwind
            ${_fz_unwind_src} -lunwind-ptrace -lunwind-generic -lunwind
            ${MS_FUZZ_READERS_LIBS} -lstdc++
    DEPENDS ${_fz_unwind_src} VERBATIM)
  add_custom_target(fuzz_unwind ALL DEPENDS ${CMAKE_CURRENT_BINARY_DIR}/fuzz_unwind)
  ms_add_test(NAME fuzz_unwind TIMEOUT 120 LABELS unwind
    COMMAND ${CMAKE_CURRENT_BINARY_DIR}/fuzz_unwind -max_total_time=30 -timeout=10 -error_exitcode=1
            -rss_limit_mb=1024 -max_len=4096 ${_fz_work}/unwind ${_fz_dir}/corpus/unwind)
  # ...and every walk of the compiled CFI table is checked against libdw's (same Dwfl).
  set_tests_properties(fuzz_unwind PROPERTIES ENVIRONMENT FUZZ_UNWIND_COMPARE=1)

  # fuzz_output: SVG (as XML), speedscope (as JSON), folded (read back), pprof (decoded).
  if(MS_EXPAT_H)
    set(_fz_out_src ${_fz_dir}/fuzz_output.c ${PROJECT_SOURCE_DIR}/output/profile.c
                    ${PROJECT_SOURCE_DIR}/output/svg.c ${PROJECT_SOURCE_DIR}/output/folded.c
                    ${PROJECT_SOURCE_DIR}/output/speedscope.c
                    ${PROJECT_SOURCE_DIR}/output/pprof.c ${PROJECT_SOURCE_DIR}/output/json_text.c
                    ${PROJECT_SOURCE_DIR}/output/msprof.c)
    add_custom_command(OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/fuzz_output
      COMMAND ${MS_CLANG} ${_fz_flags} -o ${CMAKE_CURRENT_BINARY_DIR}/fuzz_output
              ${_fz_out_src} ${CMAKE_BINARY_DIR}/output/assets.c ${_fz_common}
              -ljansson -lz -lexpat
      DEPENDS ${_fz_out_src} ${_fz_common} VERBATIM)
    add_custom_target(fuzz_output ALL DEPENDS ${CMAKE_CURRENT_BINARY_DIR}/fuzz_output)
    add_dependencies(fuzz_output ms_output) # generates output/assets.c
    ms_add_test(NAME fuzz_output TIMEOUT 120 LABELS output
      COMMAND ${CMAKE_CURRENT_BINARY_DIR}/fuzz_output -max_total_time=30 -timeout=10 -error_exitcode=1
              -rss_limit_mb=1024 -max_len=8192 ${_fz_work}/output ${_fz_dir}/corpus/output)

    # fuzz_report: dump's text and JSON reports and the walk timeline (JSON, SVG as XML)
    # over hostile names. The heap walker comes along for ms_heap_verdict and the kind names.
    file(GLOB _fz_rep_hw CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/heapwalk/*.c)
    list(FILTER _fz_rep_hw EXCLUDE REGEX "leakscan\\.c$")
    set(_fz_rep_src ${_fz_dir}/fuzz_report.c ${PROJECT_SOURCE_DIR}/output/heap_text.c
                    ${PROJECT_SOURCE_DIR}/output/heap_json.c ${PROJECT_SOURCE_DIR}/output/heap_leaks.c
                    ${PROJECT_SOURCE_DIR}/output/timeline_json.c ${PROJECT_SOURCE_DIR}/output/json_text.c
                    ${PROJECT_SOURCE_DIR}/output/timeline_svg.c ${PROJECT_SOURCE_DIR}/output/svg.c
                    ${PROJECT_SOURCE_DIR}/output/profile.c ${PROJECT_SOURCE_DIR}/output/folded.c
                    ${PROJECT_SOURCE_DIR}/output/speedscope.c ${PROJECT_SOURCE_DIR}/output/pprof.c
                    ${PROJECT_SOURCE_DIR}/output/msprof.c
                    ${_fz_rep_hw})
    file(MAKE_DIRECTORY ${_fz_work}/report)
    add_custom_command(OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/fuzz_report
      COMMAND ${MS_CLANG} ${_fz_flags} -o ${CMAKE_CURRENT_BINARY_DIR}/fuzz_report
              ${_fz_rep_src} ${CMAKE_BINARY_DIR}/output/assets.c ${MS_FUZZ_READERS_SRC}
              ${MS_FUZZ_READERS_LIBS} -ljansson -lz -lexpat -lm
      DEPENDS ${_fz_rep_src} ${MS_FUZZ_READERS_SRC} VERBATIM)
    add_custom_target(fuzz_report ALL DEPENDS ${CMAKE_CURRENT_BINARY_DIR}/fuzz_report)
    add_dependencies(fuzz_report ms_output) # generates output/assets.c
    ms_add_test(NAME fuzz_report TIMEOUT 120 LABELS output
      COMMAND ${CMAKE_CURRENT_BINARY_DIR}/fuzz_report -max_total_time=30 -timeout=10 -error_exitcode=1
              -rss_limit_mb=1024 -max_len=4096 ${_fz_work}/report ${_fz_dir}/corpus/report)
  endif()
endif()
