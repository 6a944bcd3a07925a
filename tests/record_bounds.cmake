# SPDX-License-Identifier: MIT
# The bounds on record's sample table: distinct fake stacks, never-freed blocks.
add_executable(test_record_bounds ${CMAKE_CURRENT_LIST_DIR}/unit/test_record_bounds.c)
target_include_directories(test_record_bounds PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(test_record_bounds PRIVATE ms_record ms_testlib m)
ms_add_test(NAME record_table_bounds TIMEOUT 120 LABELS unit record COMMAND test_record_bounds)
