/* SPDX-License-Identifier: MIT */
/* The unwind test targets' call chain: each function in its own file so no
 * compiler can inline or merge them; the deepest blocks on a pipe read. */
#ifndef UW_H
#define UW_H
#ifdef __cplusplus
extern "C" {
#endif
/* Asm, no prologue: while it blocks, [rsp] is the return address and rbp
 * the caller's, as at a probed function's entry. */
long uw_block_read(int fd);
int uw_a(int fd, int libc);
int uw_b(int fd, int libc);
int uw_c(int fd, int libc);
int uw_d(int fd, int libc);
extern volatile int uw_sink;
#ifdef __cplusplus
}
#endif
#endif
