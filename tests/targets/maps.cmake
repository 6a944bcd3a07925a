# Target for the maps consistency tests (tests/maps.cmake): threads growing their arenas.
add_executable(maps_churn ${CMAKE_CURRENT_LIST_DIR}/maps_churn/maps_churn.c)
target_compile_options(maps_churn PRIVATE -O2 -g)
target_link_libraries(maps_churn PRIVATE pthread)
