/* SPDX-License-Identifier: MIT */
/* read(fd, red-zone byte, 1) with no frame of its own; CFI describes it. */
	.text
	.globl	uw_block_read
	.type	uw_block_read, @function
uw_block_read:
	.cfi_startproc
	lea	-8(%rsp), %rsi
	mov	$1, %edx
	xor	%eax, %eax	/* SYS_read */
	syscall
	ret
	.cfi_endproc
	.size	uw_block_read, .-uw_block_read
	.section .note.GNU-stack,"",@progbits
