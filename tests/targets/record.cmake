# Programs `memspy record` tests profile (see tests/record.cmake).
# -fno-optimize-sibling-calls: the announced stacks must be the real ones;
# frame pointers so that --unwinder fp can be checked too (libc has none: the
# walk must get through the target's own frames, which is what is compared).
file(GLOB _rec_src CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/record_mix/*.c)
add_executable(memspy-rec-target ${_rec_src})
target_compile_options(memspy-rec-target PRIVATE -O2 -g -fno-optimize-sibling-calls
                       -fno-omit-frame-pointer)
target_link_libraries(memspy-rec-target PRIVATE pthread)
