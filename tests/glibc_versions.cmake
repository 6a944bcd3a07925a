# SPDX-License-Identifier: MIT
# memspy dump's exactness check against other glibc versions: heap_target is
# built against and run inside a cached Debian root (bullseye: glibc 2.31,
# trixie: 2.41), attached from the host. The first run debootstraps the roots
# (~1 min each here); they are cached in ${MEMSPY_ROOTS_CACHE:-/var/cache/memspy-glibc-roots}.
# Skips (77) only when the Debian mirror cannot be reached.
foreach(_suite bullseye trixie)
  ms_add_test(NAME glibc_versions_dump_${_suite} TIMEOUT 1200
              COMMAND ${CMAKE_CURRENT_LIST_DIR}/glibc_roots/run-dump-check.sh
                      --memspy $<TARGET_FILE:memspy> ${_suite}
              LABELS glibc_versions)
endforeach()
# Plain chroot: maps then shows host paths, so /proc/PID/root + path does not
# exist and only map_files finds libc. Default settings only (cheap).
ms_add_test(NAME glibc_versions_dump_bullseye_chroot TIMEOUT 1200
            COMMAND env "MEMSPY_GLIBC_VARIANTS=default|"
                    ${CMAKE_CURRENT_LIST_DIR}/glibc_roots/run-dump-check.sh
                    --memspy $<TARGET_FILE:memspy> --chroot bullseye
            LABELS glibc_versions)
