# A target that executes int3 itself and handles its own SIGTRAP.
add_executable(trap_own ${CMAKE_CURRENT_LIST_DIR}/trap_own/trap_own.c)
target_compile_options(trap_own PRIVATE -O1 -g)
