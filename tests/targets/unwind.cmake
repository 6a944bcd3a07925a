# Unwind test targets: a known call chain blocking at a known depth, built
# with frame pointers, without (-O2, CFI only), as C++ and with inlining.
set(_uw ${CMAKE_CURRENT_LIST_DIR}/unwind_chain)
set(_uw_chain ${_uw}/uw_main.c ${_uw}/uw_a.c ${_uw}/uw_b.c ${_uw}/uw_c.c ${_uw}/uw_d.c
              ${_uw}/uw_block.S)

add_executable(unwind_fp_target ${_uw_chain})
target_compile_options(unwind_fp_target PRIVATE -O1 -g -fno-omit-frame-pointer
                       -fno-optimize-sibling-calls)

add_executable(unwind_cfi_target ${_uw_chain})
target_compile_options(unwind_cfi_target PRIVATE -O2 -g -fomit-frame-pointer)

add_executable(unwind_cxx_target ${_uw}/uw_cxx_main.cpp ${_uw}/uw_cxx_descend.cpp
               ${_uw}/uw_cxx_walker.cpp ${_uw}/uw_block.S)
target_compile_options(unwind_cxx_target PRIVATE -O1 -g -fno-omit-frame-pointer)

add_executable(unwind_inline_target ${_uw}/uw_inl.c ${_uw}/uw_block.S)
target_compile_options(unwind_inline_target PRIVATE -O2 -g)
