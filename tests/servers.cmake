# Real servers from Debian, driven by their own load tools on 127.0.0.1 (bounded).
# record on redis-server under redis-benchmark: stacks reach the command loop, the code
# is verified after detach, and --unwinder fp on a build without frame pointers says so
# (tests/e2e/record_redis.py). Skips (77) without redis; ports 17300-17399.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  ms_add_test(NAME record_redis TIMEOUT 300 LABELS e2e servers
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/record_redis.py
            --memspy $<TARGET_FILE:memspy> --port-base 17300)
endif()
