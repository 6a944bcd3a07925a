# `memspy record` at default settings on a light process that leaks slowly
# (tests/e2e/record_light.py, tests/targets/light_leak): the budget narrows
# the mean so the leak view has samples; a view on few samples says so.
# `light` checks what the budget buys, so it runs the unsanitized memspy
# (MEMSPY_PLAIN, tests/CMakeLists.txt); `few` fixes the mean and keeps ASan.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  foreach(_s light few)
    set(_memspy $<TARGET_FILE:memspy>)
    if(_s STREQUAL light)
      set(_memspy ${MEMSPY_PLAIN})
    endif()
    ms_add_test(NAME record_light_${_s} TIMEOUT 240 LABELS e2e record
                COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/record_light.py
                        --memspy ${_memspy} --target $<TARGET_FILE:memspy-light-leak>
                        --scenario ${_s} --workdir ${CMAKE_CURRENT_BINARY_DIR}/record-light)
  endforeach()
endif()
