# A light, mostly sleeping leaker for the default-settings leak test (tests/record_light.cmake).
add_executable(memspy-light-leak ${CMAKE_CURRENT_LIST_DIR}/light_leak/light_leak.c)
target_compile_options(memspy-light-leak PRIVATE -O2 -g -fno-optimize-sibling-calls
                       -fno-omit-frame-pointer)
