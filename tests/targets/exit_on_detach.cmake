# memspy-exit-on-detach: exits the moment its tracer detaches (tests/e2e/exit_on_detach.py).
add_executable(memspy-exit-on-detach ${CMAKE_CURRENT_LIST_DIR}/exit_on_detach/exit_on_detach.c)
target_compile_options(memspy-exit-on-detach PRIVATE -O1 -g)
