# SPDX-License-Identifier: MIT
# mmapped chunks that the kernel merged into one VMA with a thread heap just above them
# (seen on trixie with mmap_threshold=4096): all nine mallinfo2 fields must still match.
ms_add_test(NAME dump_mmapped_merged_heap TIMEOUT 120
  COMMAND $<TARGET_FILE:dump_e2e> mallinfo $<TARGET_FILE:memspy> -- $<TARGET_FILE:heap_merge>)
