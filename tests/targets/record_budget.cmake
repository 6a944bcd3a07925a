# Targets of the overhead-budget tests (tests/record_budget.cmake).
add_executable(memspy-budget-tight ${CMAKE_CURRENT_LIST_DIR}/record_budget/tight.c)
target_compile_options(memspy-budget-tight PRIVATE -O2 -g -fno-optimize-sibling-calls
                       -fno-omit-frame-pointer)
target_link_libraries(memspy-budget-tight PRIVATE pthread)
