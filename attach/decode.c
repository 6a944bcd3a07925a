// SPDX-License-Identifier: MIT
/*
 * Relocation of the instructions a probe displaces from a function's entry
 * into an injected stub, and the sweep for branches into a patched range.
 * Zydis 4 decodes; the few encodings we need are emitted by hand.
 */
#include "attach/probe_int.h"

#include <errno.h>
#include <string.h>

#include <Zydis/Zydis.h>

static const ZydisDecoder *decoder(void)
{
	static ZydisDecoder dec;
	static bool ready;

	if (!ready) {
		ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
		ready = true;
	}
	return &dec;
}

/*
 * The sweep's decoder: Zydis's minimal mode still gives the length, the
 * relative attribute and the raw immediates, all the sweep reads (the same
 * instructions and hits over libc, libstdc++ and memspy's own text, ~14%
 * faster).
 */
static const ZydisDecoder *sweep_decoder(void)
{
	static ZydisDecoder dec;
	static bool ready;

	if (!ready) {
		ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
		ZydisDecoderEnableMode(&dec, ZYDIS_DECODER_MODE_MINIMAL, ZYAN_TRUE);
		ready = true;
	}
	return &dec;
}

size_t ms_decode_length(const uint8_t *bytes, size_t avail)
{
	ZydisDecodedInstruction in;

	if (!ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(decoder(), NULL, bytes, avail, &in)))
		return 0;
	return in.length;
}

static bool fits_rel32(int64_t v)
{
	return v >= INT32_MIN && v <= INT32_MAX;
}

static void put32(uint8_t *p, int32_t v)
{
	memcpy(p, &v, 4);
}

/* Emits `op rel32` (op is 1 or 2 bytes) at out->code + out->len reaching target from dest. */
static int emit_rel32(struct ms_reloc *out, ms_raddr_t dest, const uint8_t *op, size_t oplen,
		      ms_raddr_t target)
{
	size_t n = oplen + 4;
	int64_t rel;

	if (out->len + n > MS_RELOC_MAX)
		return -1;
	rel = (int64_t)(target - (dest + out->len + n));
	if (!fits_rel32(rel))
		return -2;
	memcpy(out->code + out->len, op, oplen);
	put32(out->code + out->len + oplen, (int32_t)rel);
	out->len += n;
	return 0;
}

static int refuse(struct ms_reloc *out, const char *what, ms_raddr_t at)
{
	snprintf(out->why, sizeof(out->why), "%s at +%#llx", what, (unsigned long long)at);
	return -MS_E_UNSUPPORTED;
}

int ms_decode_relocate(const uint8_t *bytes, size_t avail, ms_raddr_t entry, ms_raddr_t dest,
		       size_t min_len, struct ms_reloc *out)
{
	ms_raddr_t targets[8];
	size_t n_targets = 0, off = 0;

	memset(out, 0, sizeof(*out));
	while (off < min_len) {
		ZydisDecodedInstruction in;
		ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
		ms_raddr_t ip = entry + off;
		bool last;
		int rc = 0;

		if (!ZYAN_SUCCESS(
			ZydisDecoderDecodeFull(decoder(), bytes + off, avail - off, &in, ops)))
			return refuse(out, "undecodable instruction", off);
		if (out->n_insns >= MS_ARRAY_SIZE(targets))
			return refuse(out, "too many instructions", off);
		last = off + in.length >= min_len;

		if (in.attributes & ZYDIS_ATTRIB_IS_RELATIVE) {
			ZyanU64 t;
			const ZydisDecodedOperand *op = &ops[0];

			switch (in.mnemonic) {
			case ZYDIS_MNEMONIC_LOOP:
			case ZYDIS_MNEMONIC_LOOPE:
			case ZYDIS_MNEMONIC_LOOPNE:
			case ZYDIS_MNEMONIC_JRCXZ:
			case ZYDIS_MNEMONIC_JECXZ:
			case ZYDIS_MNEMONIC_JCXZ:
				return refuse(out, "loop/jrcxz (no rel32 form)", off);
			default:
				break;
			}
			if (in.meta.category == ZYDIS_CATEGORY_COND_BR ||
			    in.meta.category == ZYDIS_CATEGORY_UNCOND_BR ||
			    in.meta.category == ZYDIS_CATEGORY_CALL) {
				if (op->type != ZYDIS_OPERAND_TYPE_IMMEDIATE ||
				    !ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&in, op, ip, &t)))
					return refuse(out, "unsupported relative branch", off);
				targets[n_targets++] = t;
				if (in.meta.category == ZYDIS_CATEGORY_CALL) {
					static const uint8_t call[] = {0xe8};

					rc = emit_rel32(out, dest, call, 1, t);
				} else if (in.meta.category == ZYDIS_CATEGORY_UNCOND_BR) {
					static const uint8_t jmp[] = {0xe9};

					rc = emit_rel32(out, dest, jmp, 1, t);
					if (!last)
						return refuse(out, "jmp before the patch ends",
							      off);
				} else {
					/* jcc rel8 (70+cc) or rel32 (0f 80+cc): keep cc. */
					const uint8_t *ob = bytes + off + in.raw.prefix_count;
					uint8_t cc = ob[0] == 0x0f ? ob[1] & 0x0f : ob[0] & 0x0f;
					uint8_t jcc[2] = {0x0f, (uint8_t)(0x80 | cc)};

					if (!(ob[0] >= 0x70 && ob[0] <= 0x7f) &&
					    !(ob[0] == 0x0f && ob[1] >= 0x80 && ob[1] <= 0x8f))
						return refuse(out, "unsupported conditional branch",
							      off);
					rc = emit_rel32(out, dest, jcc, 2, t);
				}
			} else {
				/* RIP-relative memory operand: re-base the disp32. */
				int64_t nd;

				if (in.raw.disp.size != 32)
					return refuse(out, "relative operand without disp32", off);
				nd = in.raw.disp.value + (int64_t)(ip - (dest + out->len));
				if (!fits_rel32(nd))
					return refuse(out, "RIP-relative operand out of reach",
						      off);
				if (out->len + in.length > MS_RELOC_MAX)
					return refuse(out, "relocated code too long", off);
				memcpy(out->code + out->len, bytes + off, in.length);
				put32(out->code + out->len + in.raw.disp.offset, (int32_t)nd);
				out->len += in.length;
			}
			if (rc == -1)
				return refuse(out, "relocated code too long", off);
			if (rc == -2)
				return refuse(out, "branch target out of rel32 reach", off);
		} else {
			if (in.meta.category == ZYDIS_CATEGORY_RET ||
			    in.meta.category == ZYDIS_CATEGORY_UNCOND_BR ||
			    in.mnemonic == ZYDIS_MNEMONIC_INT3 ||
			    in.mnemonic == ZYDIS_MNEMONIC_UD2 ||
			    in.mnemonic == ZYDIS_MNEMONIC_HLT) {
				if (!last)
					return refuse(out, "function shorter than the patch", off);
			}
			if (out->len + in.length > MS_RELOC_MAX)
				return refuse(out, "relocated code too long", off);
			memcpy(out->code + out->len, bytes + off, in.length);
			out->len += in.length;
		}
		off += in.length;
		out->n_insns++;
	}
	out->displaced = off;

	for (size_t i = 0; i < n_targets; i++)
		if (targets[i] > entry && targets[i] < entry + off)
			return refuse(out, "branch back into the displaced bytes",
				      targets[i] - entry);

	{
		static const uint8_t jmp[] = {0xe9};
		int rc = emit_rel32(out, dest, jmp, 1, entry + off);

		if (rc == -1)
			return refuse(out, "relocated code too long", off);
		if (rc == -2)
			return refuse(out, "return jump out of rel32 reach", off);
	}
	return 0;
}

size_t ms_decode_sweep(const uint8_t *text, size_t len, ms_raddr_t addr, struct ms_range *ranges,
		       size_t n)
{
	size_t off = 0, hits = 0;
	ms_raddr_t lo = UINT64_MAX, hi = 0;

	for (size_t i = 0; i < n; i++) {
		lo = MS_MIN(lo, ranges[i].lo);
		hi = MS_MAX(hi, ranges[i].hi);
	}
	while (off < len) {
		ZydisDecodedInstruction in;
		ms_raddr_t t;

		if (!ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(sweep_decoder(), NULL, text + off,
								len - off, &in))) {
			off++;
			continue;
		}
		if ((in.attributes & ZYDIS_ATTRIB_IS_RELATIVE) && in.raw.imm[0].is_relative) {
			t = addr + off + in.length + (uint64_t)in.raw.imm[0].value.s;
			if (t >= lo && t < hi) {
				for (size_t i = 0; i < n; i++) {
					if (t < ranges[i].lo || t >= ranges[i].hi)
						continue;
					if (!ranges[i].hit_from) {
						ranges[i].hit_from = addr + off;
						ranges[i].hit_to = t;
						hits++;
					}
				}
			}
		}
		off += in.length;
	}
	return hits;
}

int ms_decode_flow(const uint8_t *bytes, size_t avail, ms_raddr_t ip, size_t *len,
		   enum ms_flow *flow, ms_raddr_t *target)
{
	ZydisDecodedInstruction in;
	ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
	ZyanU64 t;

	*flow = MS_FLOW_NONE;
	*target = 0;
	if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(decoder(), bytes, avail, &in, ops)))
		return -MS_E_UNSUPPORTED;
	*len = in.length;
	switch (in.meta.category) {
	case ZYDIS_CATEGORY_CALL:
	case ZYDIS_CATEGORY_UNCOND_BR:
	case ZYDIS_CATEGORY_COND_BR: {
		bool call = in.meta.category == ZYDIS_CATEGORY_CALL;
		bool cond = in.meta.category == ZYDIS_CATEGORY_COND_BR;

		if (ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE &&
		    ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&in, &ops[0], ip, &t))) {
			*target = t;
			*flow = call ? MS_FLOW_CALL : cond ? MS_FLOW_JCC : MS_FLOW_JMP;
		} else if (!call && !cond && ops[0].type == ZYDIS_OPERAND_TYPE_MEMORY &&
			   ops[0].mem.base == ZYDIS_REGISTER_RIP &&
			   ops[0].mem.index == ZYDIS_REGISTER_NONE) {
			*target = ip + in.length + (uint64_t)ops[0].mem.disp.value;
			*flow = MS_FLOW_JMP_MEM;
		} else {
			*flow = cond ? MS_FLOW_JCC : MS_FLOW_END;
		}
		break;
	}
	case ZYDIS_CATEGORY_RET:
		*flow = MS_FLOW_END;
		break;
	default:
		if (in.mnemonic == ZYDIS_MNEMONIC_INT3 || in.mnemonic == ZYDIS_MNEMONIC_UD2 ||
		    in.mnemonic == ZYDIS_MNEMONIC_HLT)
			*flow = MS_FLOW_END;
	}
	return 0;
}
