# SPDX-License-Identifier: MIT
# Target of the tamper tests (tests/hostile.cmake): it overwrites, unmaps or
# protects memspy's pages in it, or forks and execs fast. Unsanitized.
add_executable(memspy-hostile-target ${CMAKE_CURRENT_LIST_DIR}/hostile/hostile.c)
target_compile_options(memspy-hostile-target PRIVATE -O2 -g)
target_link_libraries(memspy-hostile-target PRIVATE pthread ${CMAKE_DL_LIBS})

# A module replaced on disk while mapped (tests/e2e/hostile_replaced.sh): the
# same source under two names of one length.
add_executable(memspy-hostile-replaced ${CMAKE_CURRENT_LIST_DIR}/hostile/replaced.c)
target_compile_options(memspy-hostile-replaced PRIVATE -O2 -g -fno-omit-frame-pointer)
target_link_libraries(memspy-hostile-replaced PRIVATE ${CMAKE_DL_LIBS})
foreach(_v original replaced)
  add_library(memspy-hostile-mod-${_v} MODULE ${CMAKE_CURRENT_LIST_DIR}/hostile/replaced_mod.c)
  target_compile_options(memspy-hostile-mod-${_v} PRIVATE -O2 -g -fno-omit-frame-pointer)
  target_compile_definitions(memspy-hostile-mod-${_v} PRIVATE MOD_FN=${_v}_allocator_fn)
endforeach()

# A maps file larger than memspy reads (tests/e2e/hostile_maps.sh).
add_executable(memspy-hostile-maps ${CMAKE_CURRENT_LIST_DIR}/hostile/maps_flood.c)
