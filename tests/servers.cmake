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

# record on Debian's python3 running tests/e2e/py_service.py (tests/e2e/record_python.py):
# --live while a ring of bytearrays turns over (the budget must keep the sampled blocks
# within the in-target pointer table; the live figure against what the target holds), and
# --subprocesses on a root whose short-lived children exit before they can be attached and
# which exits unreaped itself (exit 0, nothing FAILED).
if(Python3_FOUND)
  foreach(_s live-turnover subprocesses-exit)
    ms_add_test(NAME record_python_${_s} TIMEOUT 300 LABELS e2e servers
      COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/e2e/record_python.py
              --memspy $<TARGET_FILE:memspy> --scenario ${_s}
              --workdir ${CMAKE_CURRENT_BINARY_DIR}/record-python)
  endforeach()
endif()
